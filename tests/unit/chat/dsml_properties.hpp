// Properties every parse must have, whatever the text: shared by the bounded fuzz run in test_chat
// and the libFuzzer target tests/fuzz/fuzz_dsml.cpp.
//   * feeding the text in any chunking gives the same AssistantTurn as parse_completion;
//   * the deltas sent to the StreamSink add up to the turn's reasoning and content, and the tool
//     calls reported are the turn's tool calls;
//   * every tool call's arguments is a JSON object text.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "engine/chat/dsml_parser.hpp"

namespace dsa::test {

class RecordingSink : public StreamSink {
 public:
  void on_reasoning(std::string_view d) override { reasoning += d; }
  void on_content(std::string_view d) override { content += d; }
  void on_tool_call(const ToolCall& c) override { calls.push_back(c); }
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> calls;
};

inline json describe(const AssistantTurn& t) {
  json calls = json::array();
  for (const auto& c : t.tool_calls) calls.push_back({c.id, c.name, c.arguments});
  return json{{"reasoning", t.reasoning},
              {"content", t.content},
              {"tool_calls", calls},
              {"finish", static_cast<int>(t.finish)},
              {"format_error", t.format_error ? json(t.format_error->message) : json(nullptr)},
              {"raw_text", t.raw_text}};
}

// Feeds `text` in chunks of random lengths (1..max_chunk bytes) drawn from `seed`.
inline AssistantTurn parse_streamed(std::string_view text, bool thinking, uint64_t seed, size_t max_chunk,
                                    RecordingSink* sink) {
  std::mt19937_64 rng(seed);
  DsmlStreamParser parser(thinking);
  size_t at = 0;
  while (at < text.size()) {
    const size_t n = std::min(text.size() - at, 1 + static_cast<size_t>(rng() % max_chunk));
    parser.feed(text.substr(at, n), sink);
    at += n;
  }
  return parser.finish(text.find("<｜end▁of▁sentence｜>") != std::string_view::npos);
}

// Empty when all properties hold, else what failed.
inline std::string check_dsml_properties(std::string_view text, bool thinking, uint64_t seed) {
  const AssistantTurn whole = parse_completion(text, thinking);
  RecordingSink sink;
  const AssistantTurn streamed = parse_streamed(text, thinking, seed, 1 + seed % 16, &sink);
  if (describe(whole) != describe(streamed)) {
    const auto dump = [](const AssistantTurn& t) { return describe(t).dump(-1, ' ', false, json::error_handler_t::replace); };
    return "streamed != whole: " + dump(streamed) + " vs " + dump(whole);
  }
  if (sink.reasoning != whole.reasoning) return "reasoning deltas do not add up";
  if (sink.content != whole.content) return "content deltas do not add up";
  if (sink.calls.size() != whole.tool_calls.size()) return "tool calls reported != tool calls returned";
  for (const auto& c : whole.tool_calls) {
    const json args = json::parse(c.arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) return "arguments not a JSON object: " + c.arguments;
  }
  return "";
}

}  // namespace dsa::test
