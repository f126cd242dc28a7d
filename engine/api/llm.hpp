// The Llm interface: what the agent side needs from a model, local or remote.
// Implementations: LocalLlm (engine/runtime), RemoteLlm (engine/remote), ScriptedLlm (tests).
#pragma once
#include <atomic>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/api/types.hpp"

namespace dsa {

// Receives the turn as it is generated, for live display. Called while generate() runs, possibly on
// another thread than the caller's (the local engine calls it from its engine thread); generate()
// returns only after the last call.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void on_reasoning(std::string_view /*delta*/) {}
  virtual void on_content(std::string_view /*delta*/) {}
  virtual void on_tool_call(const ToolCall& /*call*/) {}  // once per complete call
  // The server failed part way and the turn is asked for again: what was streamed since the turn
  // began (or since the last on_retry) is not part of it, and the next deltas begin it anew.
  // `reason`: one line, the failure and the wait before the next attempt.
  virtual void on_retry(std::string_view /*reason*/) {}
  // Polled between tokens: returning true stops generation early (Ctrl-C); the turn is returned
  // with what was generated so far and finish = stop.
  virtual bool should_stop() { return false; }
};

struct ModelInfo {
  std::string name;             // model id or directory
  int64_t context_window = 0;   // tokens the backend accepts (0 = unknown)
  bool exact_token_count = false;  // count_tokens is exact (local encoder/tokenizer), not an estimate
};

class Llm {
 public:
  virtual ~Llm() = default;
  // Generates one assistant turn for the conversation. `tools` are shown to the model (the local
  // encoder attaches them to the system message). Errors that a retry cannot fix come back as Error.
  virtual Result<AssistantTurn> generate(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                                         const GenOptions& options, StreamSink* sink) = 0;
  // Tokens of the prompt the model would see for these messages (with thinking retention applied).
  virtual int64_t count_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                               bool thinking) = 0;
  virtual ModelInfo info() = 0;
};

}  // namespace dsa
