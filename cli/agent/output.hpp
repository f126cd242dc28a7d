// Listeners that print the agent's events: for people (thinking dimmed, tool calls and results
// framed and truncated) and for harnesses (one JSON object per line).
#pragma once
#include <cstdio>
#include <string>

#include "cli/agent/events.hpp"

namespace dsa::cli {

struct HumanOutputOptions {
  bool show_thinking = true;
  bool show_tool_results = true;
  bool stream_content = false;  // print content deltas as they come (chat); else after each turn
  bool color = false;           // ANSI styles (when the stream is a terminal)
  size_t max_result_lines = 12; // tool results are cut to head and tail lines beyond this
};

class HumanOutput : public AgentListener {
 public:
  HumanOutput(std::FILE* out, HumanOutputOptions options) : out_(out), opt_(options) {}
  void on_step_start(int step) override;
  void on_reasoning(std::string_view delta) override;
  void on_content(std::string_view delta) override;
  void on_turn(const AssistantTurn& turn) override;
  void on_format_error(const std::string& message) override;
  void on_tool_call(const ToolCall& call) override;
  void on_tool_result(const ToolCall& call, const Observation& obs) override;
  void on_context(const ContextRecord& record) override;
  void on_warning(const std::string& message) override;
  void on_retry(const std::string& message) override;
  void on_final(const RunResult& result) override;

 private:
  enum class Mode { none, reasoning, content };
  void switch_to(Mode m);
  const char* style(const char* ansi) const { return opt_.color ? ansi : ""; }

  std::FILE* out_;
  HumanOutputOptions opt_;
  Mode mode_ = Mode::none;
  bool shown_ = false;  // reasoning or content of the current reply was printed
};

// {"type": "step"|"reasoning"|"content"|"turn"|"format_error"|"tool_call"|"tool_result"|"context"|
//  "warning"|"final", ...}, flushed after each line.
class JsonEventOutput : public AgentListener {
 public:
  explicit JsonEventOutput(std::FILE* out) : out_(out) {}
  void on_step_start(int step) override;
  void on_reasoning(std::string_view delta) override;
  void on_content(std::string_view delta) override;
  void on_turn(const AssistantTurn& turn) override;
  void on_format_error(const std::string& message) override;
  void on_tool_call(const ToolCall& call) override;
  void on_tool_result(const ToolCall& call, const Observation& obs) override;
  void on_context(const ContextRecord& record) override;
  void on_warning(const std::string& message) override;
  void on_retry(const std::string& message) override;
  void on_final(const RunResult& result) override;

 private:
  void emit(const json& event);
  std::FILE* out_;
};

// `text` cut to its first and last lines when longer than max_lines (and to 4000 bytes), with a
// marker saying how much was left out.
std::string shorten_for_display(const std::string& text, size_t max_lines);

}  // namespace dsa::cli
