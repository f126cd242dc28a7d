// The DSML parser: DeepSeek's two round trips, streaming behaviour (what reaches the sink and
// when), and each tolerated deviation with the turn it gives.
#include <doctest/doctest.h>

#include "chat_test_data.hpp"
#include "dsml_properties.hpp"
#include "engine/chat/dsml_parser.hpp"
#include "engine/chat/encoder.hpp"

namespace dsa {
namespace {

using test::describe;
using test::RecordingSink;

// What the model generated for message `index` of the golden conversation: the encoding of
// messages[0..index] less the encoding of messages[0..index) (a prefix, by the incremental rule).
std::string golden_completion(const test::GoldenConversation& g, size_t index) {
  const std::span<const Message> all(g.messages);
  const std::string before = join_text(encode_messages(all.first(index), g.tools, {}));
  const std::string after = join_text(encode_messages(all.first(index + 1), g.tools, {}));
  REQUIRE(after.starts_with(before));
  return after.substr(before.size());
}

json expected_turn(std::string reasoning, std::string content, std::vector<ToolCall> calls, FinishReason finish,
                   std::optional<std::string> error, std::string raw) {
  AssistantTurn t;
  t.reasoning = std::move(reasoning);
  t.content = std::move(content);
  t.tool_calls = std::move(calls);
  t.finish = finish;
  if (error) t.format_error = FormatError{*error};
  t.raw_text = std::move(raw);
  return describe(t);
}

const std::string eos = "<｜end▁of▁sentence｜>";

std::string invoke(const std::string& name, const std::string& params) {
  return "<｜DSML｜invoke name=\"" + name + "\">\n" + params + "</｜DSML｜invoke>\n";
}
std::string param(const std::string& name, const std::string& is_str, const std::string& value) {
  return "<｜DSML｜parameter name=\"" + name + "\" string=\"" + is_str + "\">" + value + "</｜DSML｜parameter>\n";
}
std::string block(const std::string& invokes) {
  return "\n\n<｜DSML｜function_calls>\n" + invokes + "</｜DSML｜function_calls>";
}

TEST_CASE("round trip: the golden assistant message 4 parses back without its tool-call ids") {
  const auto g = test::load_golden();
  const std::string text = golden_completion(g, 4);
  const Message& m = g.messages[4];
  std::vector<ToolCall> calls;
  for (size_t i = 0; i < m.tool_calls.size(); ++i)
    calls.push_back(ToolCall{"call_" + std::to_string(i), m.tool_calls[i].name, m.tool_calls[i].arguments});
  CHECK(describe(parse_completion(text, true)) ==
        expected_turn(*m.reasoning_content, "", calls, FinishReason::tool_calls, std::nullopt, text));
}

TEST_CASE("round trip: the golden message at index -6 parses back to its reasoning and content") {
  const auto g = test::load_golden();
  const size_t index = g.messages.size() - 6;
  const std::string text = golden_completion(g, index);
  const Message& m = g.messages[index];
  CHECK(describe(parse_completion(text, true)) ==
        expected_turn(*m.reasoning_content, m.content, {}, FinishReason::stop, std::nullopt, text));
}

TEST_CASE("streaming: deltas arrive as soon as they are certain, never with partial markup") {
  DsmlStreamParser parser(true);
  RecordingSink sink;
  auto feed = [&](std::string_view s) { parser.feed(s, &sink); };

  feed("ab");
  CHECK(sink.reasoning == "ab");
  feed("c</th");
  CHECK(sink.reasoning == "abc");  // "</th" might be </think>
  feed("ink>Hel");
  CHECK(sink.reasoning == "abc");
  CHECK(sink.content == "Hel");
  feed("lo a < b\n");
  CHECK(sink.content == "Hello a < b");  // "<" followed by " " is no marker; "\n" might start one
  feed("\n<｜DS");
  CHECK(sink.content == "Hello a < b");
  feed("ML｜function_calls>\n<｜DSML｜inv");
  feed("oke name=\"f\">\n<｜DSML｜parameter name=\"x\" string=\"true\">1</｜DSML｜parameter>\n</｜DSML｜invoke");
  CHECK(sink.calls.empty());
  feed(">");
  REQUIRE(sink.calls.size() == 1);
  CHECK(to_json(sink.calls[0]) == to_json(ToolCall{"call_0", "f", R"({"x": "1"})"}));
  feed("\n</｜DSML｜function_calls>");
  feed(eos);
  const AssistantTurn turn = parser.finish(true);
  CHECK(sink.content == "Hello a < b");
  CHECK(turn.content == "Hello a < b");
  CHECK(turn.reasoning == "abc");
  CHECK(turn.finish == FinishReason::tool_calls);
  CHECK_FALSE(turn.format_error.has_value());
}

TEST_CASE("streaming: a UTF-8 character split across chunks reaches the sink whole") {
  DsmlStreamParser parser(false);
  RecordingSink sink;
  const std::string e = "é";
  parser.feed("x" + e.substr(0, 1), &sink);
  CHECK(sink.content == "x");
  parser.feed(e.substr(1), &sink);
  CHECK(sink.content == "x" + e);
  CHECK(parser.finish(false).finish == FinishReason::length);
}

TEST_CASE("arguments: string values JSON-encoded, string=\"false\" values verbatim") {
  const std::string text = "</think>" +
                           block(invoke("f", param("s", "true", "a \"q\"\nb") + param("n", "false", "[1,2.50]") +
                                                 param("o", "false", "{\"k\": null}"))) +
                           eos;
  CHECK(describe(parse_completion(text, true)) ==
        expected_turn("", "", {ToolCall{"call_0", "f", R"({"s": "a \"q\"\nb", "n": [1,2.50], "o": {"k": null}})"}},
                      FinishReason::tool_calls, std::nullopt, text));
}

// Each malformed output: the turn the parser gives and the message the model will be shown.
struct Malformed {
  const char* what;
  bool thinking;
  std::string text;
  json expected;
};

TEST_CASE("tolerance: malformed outputs give a structured FormatError and keep what is usable") {
  const std::string ok_call = invoke("f", param("x", "true", "1"));
  const ToolCall f_call{"call_0", "f", R"({"x": "1"})"};
  std::vector<Malformed> cases;
  auto add = [&](const char* what, bool thinking, std::string text, std::string reasoning, std::string content,
                 std::vector<ToolCall> calls, FinishReason finish, std::optional<std::string> error) {
    cases.push_back({what, thinking, text,
                     expected_turn(std::move(reasoning), std::move(content), std::move(calls), finish, std::move(error), text)});
  };
  add("no </think> in thinking mode: all reasoning", true, "just thinking" + eos, "just thinking", "", {},
      FinishReason::stop, "malformed reply: the reply ended inside the thinking block (no </think>)");
  add("cut off while thinking", true, "just thin", "just thin", "", {}, FinishReason::length,
      "malformed reply: the reply ended inside the thinking block (no </think>)");
  add("tool calls before </think>", true, "plan" + block(ok_call) + eos, "plan", "", {f_call}, FinishReason::tool_calls,
      "malformed reply: the tool calls were not preceded by </think>");
  add("string=\"false\" value that is not JSON", false,
      block(invoke("f", param("n", "false", "five"))) + eos, "", "", {ToolCall{"call_0", "f", R"({"n": "five"})"}},
      FinishReason::tool_calls,
      "malformed reply: parameter 'n' of tool call 'f' has string=\"false\" but is not valid JSON; it was passed as a string");
  add("unknown parameter attributes", false,
      block(invoke("f", "<｜DSML｜parameter name=\"n\" string=\"int\" type=\"x\">5</｜DSML｜parameter>\n")) + eos, "", "",
      {ToolCall{"call_0", "f", R"({"n": 5})"}}, FinishReason::tool_calls,
      "malformed reply: unknown attribute 'type' of parameter in tool call 'f' was ignored; parameter 'n' of tool call 'f' "
      "has string=\"int\" (expected \"true\" or \"false\"); it was read as JSON when valid, else as a string");
  add("parameter not closed", false,
      block(invoke("f", "<｜DSML｜parameter name=\"x\" string=\"true\">1\n")) + eos, "", "",
      {ToolCall{"call_0", "f", R"({"x": "1\n"})"}}, FinishReason::tool_calls,
      "malformed reply: parameter 'x' of tool call 'f' is missing its </｜DSML｜parameter>");
  add("invoke not closed before the end of the block", false,
      "hi\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n" + param("x", "true", "1") + "</｜DSML｜function_calls>" + eos,
      "", "hi", {f_call}, FinishReason::tool_calls, "malformed reply: tool call 'f' is missing its </｜DSML｜invoke>");
  add("text after the tool block", false, block(ok_call) + "\nmore words" + eos, "", "", {f_call},
      FinishReason::tool_calls, "malformed reply: text after </｜DSML｜function_calls> '\nmore words' was ignored");
  add("EOS inside a tool call: the call is dropped", false,
      "a\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"x\" string=\"true\">1" + eos, "",
      "a", {}, FinishReason::stop,
      "malformed reply: parameter 'x' of tool call 'f' is missing its </｜DSML｜parameter>; tool call 'f' was cut off before its </｜DSML｜invoke> and was dropped; the reply ended inside the "
      "tool-call block (no </｜DSML｜function_calls>)");
  add("cut off after a complete call: the complete call is kept", false,
      "\n\n<｜DSML｜function_calls>\n" + ok_call + invoke("g", param("y", "true", "2")).substr(0, 40), "", "", {f_call},
      FinishReason::tool_calls,
      "malformed reply: tool call 'g' was cut off before its </｜DSML｜invoke> and was dropped; the reply ended inside the "
      "tool-call block (no </｜DSML｜function_calls>)");
  add("duplicate parameter", false, block(invoke("f", param("x", "true", "1") + param("x", "true", "2"))) + eos, "", "",
      {f_call}, FinishReason::tool_calls,
      "malformed reply: parameter 'x' of tool call 'f' is given twice; the first value was kept");
  add("invoke without a name", false, block(invoke("", param("x", "true", "1")) + ok_call) + eos, "", "",
      {f_call}, FinishReason::tool_calls,
      "malformed reply: a tool call without a valid name=\"...\" attribute (' name=\"\"') was dropped");
  add("block tag without its '>'", false, "\n\n<｜DSML｜function_calls\n" + ok_call + "</｜DSML｜function_calls>" + eos, "",
      "", {f_call}, FinishReason::tool_calls, "malformed reply: the <｜DSML｜function_calls> tag is missing its '>'");
  add("special tokens inside content", false, "a <think> b" + eos, "", "a <think> b", {}, FinishReason::stop,
      "malformed reply: unexpected <think> inside the reasoning or content");
  add("text after EOS", false, "done" + eos + "extra", "", "done", {}, FinishReason::stop,
      "malformed reply: text after the end of the reply 'extra' was ignored");
  add("block without the blank line before it", false, "hi<｜DSML｜function_calls>\n" + ok_call + "</｜DSML｜function_calls>" + eos,
      "", "hi", {f_call}, FinishReason::tool_calls, std::nullopt);

  for (const auto& c : cases) {
    CAPTURE(std::string(c.what));
    CHECK(describe(parse_completion(c.text, c.thinking)) == c.expected);
    for (uint64_t seed = 0; seed < 20; ++seed) CHECK(test::check_dsml_properties(c.text, c.thinking, seed) == "");
  }
}

TEST_CASE("tool calls are reported to the sink once each, in order, with ids call_0, call_1, ...") {
  const std::string text = block(invoke("a", "") + invoke("b", param("k", "false", "1"))) + eos;
  RecordingSink sink;
  const AssistantTurn turn = test::parse_streamed(text, false, 7, 3, &sink);
  REQUIRE(sink.calls.size() == 2);
  CHECK(to_json(sink.calls[0]) == to_json(ToolCall{"call_0", "a", "{}"}));
  CHECK(to_json(sink.calls[1]) == to_json(ToolCall{"call_1", "b", R"({"k": 1})"}));
  CHECK(describe(turn) == describe(parse_completion(text, false)));
}

}  // namespace
}  // namespace dsa
