// What the agent loop reports while it runs, and how a submission ends. `run`, `chat`, `batch` and
// the tests are listeners: the loop never prints.
#pragma once
#include <string>
#include <string_view>

#include "context/budget.hpp"
#include "engine/api/types.hpp"
#include "tools/tool.hpp"

namespace dsa::cli {

// How one submission ended (agent-spec.md 5, plus `interrupted` for Ctrl-C).
enum class FinalStatus { answered, max_steps, max_resets, context_exhausted, timeout, error, interrupted };

const char* final_status_name(FinalStatus s);  // "answered", "max_steps", ...

struct RunResult {
  FinalStatus status = FinalStatus::error;
  std::string answer;  // content of the answering turn (answered only)
  std::string error;   // the error (error), or what limit was hit (max_steps, timeout, ...)
  int steps = 0;       // model turns generated in this submission
  int tool_calls = 0;
  int resets = 0;      // context-strategy applications
  Usage usage;         // summed over the submission's model calls (summary calls included)
  double seconds = 0;
};

json to_json(const RunResult& r);  // {"status","answer","steps","tool_calls","resets","usage","seconds",["error"]}

// Every callback runs on the loop's thread. Deltas arrive while the model generates; the rest
// between model calls.
class AgentListener {
 public:
  virtual ~AgentListener() = default;
  virtual void on_step_start(int /*step*/) {}
  virtual void on_reasoning(std::string_view /*delta*/) {}
  virtual void on_content(std::string_view /*delta*/) {}
  // The complete turn, with tool-call ids already made unique in the conversation.
  virtual void on_turn(const AssistantTurn& /*turn*/) {}
  // The turn was malformed; `message` is what the model is told back.
  virtual void on_format_error(const std::string& /*message*/) {}
  virtual void on_tool_call(const ToolCall& /*call*/) {}  // just before it runs
  virtual void on_tool_result(const ToolCall& /*call*/, const Observation& /*obs*/) {}
  virtual void on_context(const ContextRecord& /*record*/) {}
  virtual void on_warning(const std::string& /*message*/) {}
  // The model's server failed part way through the step's turn, which is asked for again: the
  // deltas since the step began (or the last on_retry) are void (StreamSink::on_retry).
  virtual void on_retry(const std::string& /*message*/) {}
  virtual void on_final(const RunResult& /*result*/) {}
};

}  // namespace dsa::cli
