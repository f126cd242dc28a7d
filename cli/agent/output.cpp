// Printing the agent's events (see output.hpp).
#include "cli/agent/output.hpp"

#include <algorithm>

namespace dsa::cli {

namespace {
constexpr const char* kDim = "\033[2m";
constexpr const char* kBold = "\033[1m";
constexpr const char* kCyan = "\033[36m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kReset = "\033[0m";
constexpr size_t kMaxDisplayBytes = 4000;

std::string one_line(std::string s, size_t max_bytes) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > max_bytes) s = s.substr(0, max_bytes) + "...";
  return s;
}
}  // namespace

std::string shorten_for_display(const std::string& text, size_t max_lines) {
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  std::string out;
  if (lines.size() <= max_lines) {
    out = text;
  } else {
    const size_t head = max_lines / 2, tail = max_lines - head;
    for (size_t i = 0; i < head; ++i) out.append(lines[i]).push_back('\n');
    out += "... (" + std::to_string(lines.size() - max_lines) + " lines not shown) ...\n";
    for (size_t i = lines.size() - tail; i < lines.size(); ++i) out.append(lines[i]).push_back('\n');
  }
  if (out.size() > kMaxDisplayBytes)
    out = out.substr(0, kMaxDisplayBytes / 2) + "\n... (" + std::to_string(out.size() - kMaxDisplayBytes) +
          " bytes not shown) ...\n" + out.substr(out.size() - kMaxDisplayBytes / 2);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// --- HumanOutput ---

void HumanOutput::switch_to(Mode m) {
  if (mode_ == m) return;
  if (mode_ == Mode::reasoning) std::fprintf(out_, "%s\n", style(kReset));
  else if (mode_ == Mode::content) std::fputc('\n', out_);
  if (m == Mode::reasoning) std::fprintf(out_, "%s", style(kDim));
  mode_ = m;
}

void HumanOutput::on_step_start(int step) {
  switch_to(Mode::none);
  shown_ = false;
  std::fprintf(out_, "%s-- step %d --%s\n", style(kDim), step, style(kReset));
  std::fflush(out_);
}

void HumanOutput::on_reasoning(std::string_view delta) {
  if (!opt_.show_thinking) return;
  switch_to(Mode::reasoning);
  shown_ = true;
  std::fwrite(delta.data(), 1, delta.size(), out_);
  std::fflush(out_);
}

void HumanOutput::on_content(std::string_view delta) {
  if (!opt_.stream_content) return;
  switch_to(Mode::content);
  shown_ = true;
  std::fwrite(delta.data(), 1, delta.size(), out_);
  std::fflush(out_);
}

void HumanOutput::on_turn(const AssistantTurn& turn) {
  switch_to(Mode::none);
  // Without streaming, the text said next to tool calls is shown here; the answer is the caller's.
  if (!opt_.stream_content && !turn.tool_calls.empty() && !turn.content.empty())
    std::fprintf(out_, "%s\n", turn.content.c_str());
  std::fflush(out_);
}

void HumanOutput::on_format_error(const std::string& message) {
  switch_to(Mode::none);
  std::fprintf(out_, "%s! malformed model output: %s%s\n", style(kYellow), one_line(message, 300).c_str(),
               style(kReset));
}

void HumanOutput::on_tool_call(const ToolCall& call) {
  switch_to(Mode::none);
  std::fprintf(out_, "%s> %s%s %s%s\n", style(kCyan), style(kBold), call.name.c_str(),
               one_line(call.arguments, 300).c_str(), style(kReset));
  std::fflush(out_);
}

void HumanOutput::on_tool_result(const ToolCall& /*call*/, const Observation& obs) {
  switch_to(Mode::none);
  std::fprintf(out_, "%s< %s%.1f s%s%s\n", obs.is_error ? style(kRed) : style(kDim), obs.is_error ? "error, " : "",
               obs.seconds, obs.truncated ? ", truncated" : "", style(kReset));
  if (opt_.show_tool_results && !obs.text.empty())
    std::fprintf(out_, "%s%s%s\n", style(kDim), shorten_for_display(obs.text, opt_.max_result_lines).c_str(),
                 style(kReset));
  std::fflush(out_);
}

void HumanOutput::on_context(const ContextRecord& r) {
  switch_to(Mode::none);
  std::fprintf(out_, "%s~ context %s (reset %d): %lld -> %lld tokens, %d rounds dropped%s%s\n", style(kYellow),
               strategy_name(r.applied), r.reset_index, static_cast<long long>(r.tokens_before),
               static_cast<long long>(r.tokens_after), r.rounds_dropped,
               r.fallback_reason.empty() ? "" : (" (" + r.fallback_reason + ")").c_str(), style(kReset));
  std::fflush(out_);
}

void HumanOutput::on_warning(const std::string& message) {
  switch_to(Mode::none);
  std::fprintf(out_, "%swarning: %s%s\n", style(kYellow), message.c_str(), style(kReset));
}

void HumanOutput::on_retry(const std::string& message) {
  switch_to(Mode::none);
  std::fprintf(out_, "%swarning: %s%s%s\n", style(kYellow), message.c_str(),
               shown_ ? " (what was shown of this reply is dropped)" : "", style(kReset));
  shown_ = false;
  std::fflush(out_);
}

void HumanOutput::on_final(const RunResult& r) {
  switch_to(Mode::none);
  std::fprintf(out_, "%s== %s after %d steps, %d tool calls, %lld+%lld tokens, %.1f s%s%s%s\n",
               r.status == FinalStatus::answered ? style(kDim) : style(kRed), final_status_name(r.status), r.steps,
               r.tool_calls, static_cast<long long>(r.usage.prompt_tokens),
               static_cast<long long>(r.usage.completion_tokens), r.seconds, r.error.empty() ? "" : ": ",
               r.error.c_str(), style(kReset));
  std::fflush(out_);
}

// --- JsonEventOutput ---

void JsonEventOutput::emit(const json& event) {
  const std::string line = event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

void JsonEventOutput::on_step_start(int step) { emit({{"type", "step"}, {"step", step}}); }
void JsonEventOutput::on_reasoning(std::string_view d) { emit({{"type", "reasoning"}, {"delta", d}}); }
void JsonEventOutput::on_content(std::string_view d) { emit({{"type", "content"}, {"delta", d}}); }

void JsonEventOutput::on_turn(const AssistantTurn& t) {
  json calls = json::array();
  for (const auto& c : t.tool_calls) calls.push_back(to_json(c));
  emit({{"type", "turn"}, {"content", t.content}, {"reasoning", t.reasoning}, {"tool_calls", calls},
        {"usage", to_json(t.usage)}});
}

void JsonEventOutput::on_format_error(const std::string& m) { emit({{"type", "format_error"}, {"message", m}}); }

void JsonEventOutput::on_tool_call(const ToolCall& c) {
  emit({{"type", "tool_call"}, {"id", c.id}, {"name", c.name}, {"arguments", c.arguments}});
}

void JsonEventOutput::on_tool_result(const ToolCall& c, const Observation& o) {
  emit({{"type", "tool_result"}, {"id", c.id}, {"name", c.name}, {"is_error", o.is_error},
        {"truncated", o.truncated}, {"seconds", o.seconds}, {"output", o.text}});
}

void JsonEventOutput::on_context(const ContextRecord& r) {
  json j = to_json(r);
  j["type"] = "context";
  emit(j);
}

void JsonEventOutput::on_warning(const std::string& m) { emit({{"type", "warning"}, {"message", m}}); }
void JsonEventOutput::on_retry(const std::string& m) { emit({{"type", "retry"}, {"message", m}}); }

void JsonEventOutput::on_final(const RunResult& r) {
  json j{{"type", "final"}};
  j.update(to_json(r));
  emit(j);
}

}  // namespace dsa::cli
