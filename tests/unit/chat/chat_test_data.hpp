// Shared by the chat tests: DeepSeek's golden conversation (fixtures/dsv32-encoding) and a few
// small conversations built in code.
#pragma once
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/api/types.hpp"
#include "tests/test_support.hpp"

namespace dsa::test {

struct GoldenConversation {
  std::vector<Message> messages;
  std::vector<ToolSpec> tools;
  std::string expected;  // test_output.txt with surrounding whitespace stripped, as DeepSeek's test does
};

inline std::string strip(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

inline GoldenConversation load_golden() {
  const auto dir = shared_dir() / "fixtures" / "dsv32-encoding";
  const json input = json::parse(read_text(dir / "test_input.json"));
  GoldenConversation g;
  std::string err;
  for (const auto& m : input.at("messages")) {
    auto msg = message_from_json(m, &err);
    REQUIRE_MESSAGE(msg.has_value(), err);
    g.messages.push_back(*msg);
  }
  for (const auto& t : input.at("tools")) {
    auto tool = tool_spec_from_json(t, &err);
    REQUIRE_MESSAGE(tool.has_value(), err);
    g.tools.push_back(*tool);
  }
  g.expected = strip(read_text(dir / "test_output.txt"));
  return g;
}

inline Message user_message(std::string content) { return Message{.role = Role::user, .content = std::move(content)}; }

inline Message assistant_message(std::string reasoning, std::string content, std::vector<ToolCall> calls = {}) {
  return Message{.role = Role::assistant, .content = std::move(content), .reasoning_content = std::move(reasoning),
                 .tool_calls = std::move(calls)};
}

inline Message tool_message(std::string content) { return Message{.role = Role::tool, .content = std::move(content)}; }

}  // namespace dsa::test
