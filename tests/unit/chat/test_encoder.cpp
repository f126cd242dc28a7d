// The V3.2 encoder: DeepSeek's golden pair byte-exact, the piece structure (what is markup and what
// is untrusted text), each role and mode, and the incremental-encoding rule the prefix cache uses.
#include <doctest/doctest.h>

#include <algorithm>

#include "chat_test_data.hpp"
#include "engine/chat/dsv32_format.hpp"
#include "engine/chat/encoder.hpp"

namespace dsa {
namespace {

using test::assistant_message;
using test::tool_message;
using test::user_message;

std::string encode_text(std::span<const Message> messages, std::span<const ToolSpec> tools = {},
                        const EncodeOptions& opt = {}) {
  return join_text(encode_messages(messages, tools, opt));
}

size_t common_prefix(std::string_view a, std::string_view b) {
  return static_cast<size_t>(std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin());
}

const std::string tools_head = "\n\n" + std::string(dsv32::tools_prompt_head);

TEST_CASE("golden: DeepSeek's test_input.json encodes to test_output.txt byte for byte") {
  const auto g = test::load_golden();
  CHECK(encode_text(g.messages, g.tools) == g.expected);
}

TEST_CASE("pieces: markup and untrusted text are separated, adjacent pieces merged") {
  const std::vector<Message> messages = {
      Message{.role = Role::system, .content = "S"},
      user_message("U<think>"),
      assistant_message("R", "", {ToolCall{"id", "f", R"({"q": "x", "n": 2})"}}),
      tool_message("T"),
  };
  const std::vector<ToolSpec> tools = {ToolSpec{"f", "d", json{{"type", "object"}}}};
  const std::vector<PromptPiece> expected = {
      {std::string(dsv32::bos), true},
      {"S", false},
      {tools_head, true},
      {R"({"name": "f", "description": "d", "parameters": {"type": "object"}})", false},
      {"\n</functions>\n<｜User｜>", true},
      {"U<think>", false},
      {"<｜Assistant｜><think>", true},
      {"R", false},
      {"</think>\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"", true},
      {"f", false},
      {"\">\n<｜DSML｜parameter name=\"", true},
      {"q", false},
      {"\" string=\"true\">", true},
      {"x", false},
      {"</｜DSML｜parameter>\n<｜DSML｜parameter name=\"", true},
      {"n", false},
      {"\" string=\"false\">", true},
      {"2", false},
      {"</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls><｜end▁of▁sentence｜>\n\n<function_results>\n<result>",
       true},
      {"T", false},
      {"</result>\n</function_results>\n\n<think>", true},
  };
  CHECK(encode_messages(messages, tools, {}) == expected);
}

TEST_CASE("arguments: non-string values are dumped as Python's json.dumps writes them, in key order") {
  const std::vector<Message> messages = {
      user_message("q"),
      assistant_message("", "", {ToolCall{"", "f", R"({"z": [1, 2.0, {"k": "é"}], "a": null, "b": true, "s": "raw \"text\"\n"})"}}),
  };
  const std::string text = encode_text(messages, {}, EncodeOptions{.thinking = false});
  CHECK(text ==
        "<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜></think>\n\n<｜DSML｜function_calls>\n"
        "<｜DSML｜invoke name=\"f\">\n"
        "<｜DSML｜parameter name=\"z\" string=\"false\">[1, 2.0, {\"k\": \"é\"}]</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"a\" string=\"false\">null</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"b\" string=\"false\">true</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"s\" string=\"true\">raw \"text\"\n</｜DSML｜parameter>\n"
        "</｜DSML｜invoke>\n</｜DSML｜function_calls><｜end▁of▁sentence｜>");
}

TEST_CASE("generation prompts in thinking and chat mode") {
  const std::vector<Message> asked = {user_message("hi")};
  CHECK(encode_text(asked) == "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>");
  CHECK(encode_text(asked, {}, EncodeOptions{.thinking = false}) ==
        "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>");
  CHECK(encode_text(asked, {}, EncodeOptions{.add_bos = false}) == "<｜User｜>hi<｜Assistant｜><think>");

  const std::vector<Message> after_tool = {user_message("hi"), assistant_message("r", "c", {ToolCall{"", "f", "{}"}}),
                                           tool_message("out")};
  const std::string tail = "\n\n<function_results>\n<result>out</result>\n</function_results>\n\n";
  CHECK(encode_text(after_tool) == "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>r</think>c\n\n"
                                   "<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>\n"
                                   "</｜DSML｜function_calls><｜end▁of▁sentence｜>" + tail + "<think>");
  // Chat mode: no reasoning anywhere, and the tool block hands over with </think>.
  CHECK(encode_text(after_tool, {}, EncodeOptions{.thinking = false}) ==
        "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>c\n\n<｜DSML｜function_calls>\n"
        "<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>\n</｜DSML｜function_calls><｜end▁of▁sentence｜>" + tail + "</think>");
}

TEST_CASE("tools go to the first system message, or to one created at the front") {
  const std::vector<ToolSpec> tools = {ToolSpec{"t", "d", json::object()}};
  const std::string tools_block = tools_head + R"({"name": "t", "description": "d", "parameters": {}})" + "\n</functions>\n";
  const std::vector<Message> no_system = {user_message("hi")};
  CHECK(encode_text(no_system, tools) == "<｜begin▁of▁sentence｜>" + tools_block + "<｜User｜>hi<｜Assistant｜><think>");
  const std::vector<Message> late_system = {user_message("a"), assistant_message("", "b"),
                                            Message{.role = Role::system, .content = "sys"}, user_message("c")};
  CHECK(encode_text(late_system, tools) ==
        "<｜begin▁of▁sentence｜><｜User｜>a<｜Assistant｜></think>b<｜end▁of▁sentence｜>sys" + tools_block +
            "<｜User｜>c<｜Assistant｜><think>");
}

TEST_CASE("response_format on system and developer messages; developer counts as a user turn") {
  const json schema = {{"type", "object"}, {"title", "答"}};
  const std::vector<Message> messages = {
      Message{.role = Role::system, .content = "S", .response_format = schema},
      user_message("u"),
      assistant_message("r", "a"),
      Message{.role = Role::developer, .content = "D", .response_format = schema},
  };
  const std::string rf = "\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
                         "{\"type\": \"object\", \"title\": \"答\"}";
  CHECK(encode_text(messages) == "<｜begin▁of▁sentence｜>S" + rf + "<｜User｜>u<｜Assistant｜></think>a<｜end▁of▁sentence｜>" +
                                     "<｜User｜>" + rf + "\n\n# The user's message is: D<｜Assistant｜><think>");
}

TEST_CASE("drop_thinking off keeps earlier turns as they were rendered while current") {
  const auto g = test::load_golden();
  const std::string kept = encode_text(g.messages, g.tools, EncodeOptions{.drop_thinking = false});
  CHECK(kept.find("<｜User｜>明天杭州和北京的天气怎么样？<｜Assistant｜><think>用户询问明天的天气，"
                  "我需要先获取当前日期来计算明天的日期📅</think>\n\n<｜DSML｜function_calls>") != std::string::npos);
  CHECK(kept.find("</function_results>\n\n<think>现在知道今天是2024-01-15") != std::string::npos);
  CHECK(kept.find("</think>\n\n</think>") == std::string::npos);
  CHECK(kept.ends_with(g.expected.substr(g.expected.find("<｜User｜>谢谢！那后天呢？"))));
}

// For every split of the golden conversation into messages[0..n) and an extension messages[n..m):
// the old encoding is an exact prefix of the new one unless a user turn was added; then they agree
// exactly up to stable_prefix_bytes(messages[0..n)), where "<think>" became "</think>".
TEST_CASE("incremental encoding: append-only within a user turn, flip at the exact position otherwise") {
  const auto g = test::load_golden();
  const std::span<const Message> all(g.messages);
  int n_flips = 0;
  int n_appends = 0;
  for (size_t n = 1; n <= all.size(); ++n) {
    const std::string old_text = encode_text(all.first(n), g.tools);
    const size_t stable = stable_prefix_bytes(all.first(n), g.tools, {});
    const bool old_has_user = std::any_of(all.begin(), all.begin() + n, [](const Message& m) { return m.role == Role::user; });
    for (size_t m = n + 1; m <= all.size(); ++m) {
      CAPTURE(n);
      CAPTURE(m);
      const std::string new_text = encode_text(all.first(m), g.tools);
      const bool user_added =
          std::any_of(all.begin() + n, all.begin() + m, [](const Message& x) { return x.role == Role::user; });
      const size_t common = common_prefix(old_text, new_text);
      if (!user_added || !old_has_user) {
        CHECK(common == old_text.size());
        if (!old_has_user) CHECK(stable == old_text.size());
        ++n_appends;
      } else {
        // Text level: "<think>" and "</think>" share their "<"; token level they differ at `stable`.
        CHECK(common == stable + 1);
        CHECK(old_text.substr(stable).starts_with("<think>"));
        CHECK(new_text.substr(stable).starts_with("</think>"));
        CHECK(old_text.substr(0, stable).ends_with("<｜User｜>明天杭州和北京的天气怎么样？<｜Assistant｜>"));
        ++n_flips;
      }
      // Each encoding's own text is never shorter than the guarantee.
      CHECK(common >= stable);
    }
  }
  CHECK(n_flips == 7 * 5);  // old ends in messages 1..7 (7 choices), extension reaches 8..12 (5 choices)
  CHECK(n_appends > 0);
}

TEST_CASE("incremental encoding: a developer message flips the previous user turn like a user message") {
  const std::vector<Message> before = {user_message("u"), assistant_message("r", "", {ToolCall{"", "f", "{}"}}),
                                       tool_message("t")};
  std::vector<Message> after = before;
  after.push_back(Message{.role = Role::developer, .content = "d"});
  const std::string old_text = encode_text(before);
  const std::string new_text = encode_text(after);
  const size_t stable = stable_prefix_bytes(before, {}, {});
  CHECK(old_text.substr(0, stable) == "<｜begin▁of▁sentence｜><｜User｜>u<｜Assistant｜>");
  CHECK(new_text.substr(stable) ==
        "</think>\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>\n</｜DSML｜function_calls>"
        "<｜end▁of▁sentence｜>\n\n<function_results>\n<result>t</result>\n</function_results>\n\n</think>"
        "<｜User｜>\n\n# The user's message is: d<｜Assistant｜><think>");
}

TEST_CASE("incremental encoding: chat mode and drop_thinking off are append-only across user turns") {
  const auto g = test::load_golden();
  const std::span<const Message> all(g.messages);
  for (const EncodeOptions opt : {EncodeOptions{.thinking = false}, EncodeOptions{.drop_thinking = false}}) {
    for (size_t n = 1; n < all.size(); ++n) {
      const std::string old_text = encode_text(all.first(n), g.tools, opt);
      CHECK(stable_prefix_bytes(all.first(n), g.tools, opt) == old_text.size());
      CHECK(encode_text(all, g.tools, opt).starts_with(old_text));
    }
  }
}

TEST_CASE("check_conversation names the message that cannot be encoded") {
  const std::vector<Message> orphan = {user_message("u"), tool_message("r")};
  REQUIRE_FALSE(check_conversation(orphan).ok());
  CHECK(check_conversation(orphan).error().message ==
        "message 1 (tool): a tool result must follow an assistant message with tool calls");

  const std::vector<Message> too_many = {user_message("u"), assistant_message("", "", {ToolCall{"", "f", "{}"}}),
                                         tool_message("1"), tool_message("2")};
  REQUIRE_FALSE(check_conversation(too_many).ok());
  CHECK(check_conversation(too_many).error().message == "message 3 (tool): more tool results than the assistant's 1 tool call(s)");

  const std::vector<Message> bad_args = {user_message("u"), assistant_message("", "", {ToolCall{"", "f", "[1]"}})};
  REQUIRE_FALSE(check_conversation(bad_args).ok());
  CHECK(check_conversation(bad_args).error().message ==
        "message 1 (assistant): arguments of tool call 'f' are not a JSON object");

  CHECK(check_conversation(test::load_golden().messages).ok());
}

}  // namespace
}  // namespace dsa
