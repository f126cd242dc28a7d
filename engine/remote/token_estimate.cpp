// Byte-based prompt-size estimate (see token_estimate.hpp).
#include "engine/remote/token_estimate.hpp"

namespace dsa {

namespace {
constexpr double kBytesPerToken = 3.5;
constexpr double kTokensPerMessage = 4;  // role markers and separators
constexpr double kTokensPerTool = 8;     // the schema wrapper around each tool
}  // namespace

double estimate_prompt_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking) {
  size_t first_visible_reasoning = 0;  // just after the last user/developer message
  for (size_t i = 0; i < messages.size(); ++i)
    if (messages[i].role == Role::user || messages[i].role == Role::developer) first_visible_reasoning = i + 1;

  double bytes = 0, framing = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    framing += kTokensPerMessage;
    bytes += static_cast<double>(m.content.size());
    if (thinking && i >= first_visible_reasoning && m.reasoning_content) bytes += static_cast<double>(m.reasoning_content->size());
    for (const auto& c : m.tool_calls) bytes += static_cast<double>(c.name.size() + c.arguments.size());
  }
  for (const auto& t : tools) {
    framing += kTokensPerTool;
    bytes += static_cast<double>(t.name.size() + t.description.size() + t.parameters.dump().size());
  }
  return bytes / kBytesPerToken + framing;
}

}  // namespace dsa
