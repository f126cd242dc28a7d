// A deterministic Llm for the context tests: count_tokens = characters / 4 of what the model sees
// (content, reasoning when the retention rule keeps it, tool names and arguments); generate returns
// a fixed summary (or a fixed error) and records the messages it was given.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "engine/api/llm.hpp"

namespace dsa::test {

// Characters of the messages as given (the caller applies retention first).
inline int64_t visible_chars(const std::vector<Message>& messages) {
  int64_t n = 0;
  for (const Message& m : messages) {
    n += static_cast<int64_t>(m.content.size());
    if (m.reasoning_content) n += static_cast<int64_t>(m.reasoning_content->size());
    for (const ToolCall& c : m.tool_calls) n += static_cast<int64_t>(c.name.size() + c.arguments.size());
  }
  return n;
}

class FakeLlm : public Llm {
 public:
  std::string summary = "SUMMARY: found X, dead end Y";
  std::optional<std::string> fail_with;  // generate returns this error when set
  std::vector<std::vector<Message>> generate_calls;
  int count_calls = 0;

  Result<AssistantTurn> generate(const std::vector<Message>& messages, std::span<const ToolSpec>, const GenOptions&,
                                 StreamSink*) override {
    generate_calls.push_back(messages);
    if (fail_with) return make_error(*fail_with);
    AssistantTurn t;
    t.content = summary;
    t.reasoning = "thinking about the summary";
    t.usage.prompt_tokens = visible_chars(messages) / 4;
    t.usage.completion_tokens = static_cast<int64_t>(summary.size()) / 4;
    return t;
  }

  // The messages come from Conversation::messages_for_model, so retention is already applied.
  int64_t count_tokens(const std::vector<Message>& messages, std::span<const ToolSpec>, bool) override {
    ++count_calls;
    return visible_chars(messages) / 4;
  }

  ModelInfo info() override { return ModelInfo{"fake", 0, true}; }
};

}  // namespace dsa::test
