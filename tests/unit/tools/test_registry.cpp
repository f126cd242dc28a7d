// ToolRegistry, argument checking, head+tail truncation and one-line excerpts.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <thread>

#include "tools/arguments.hpp"
#include "tools/truncate.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;

TEST_CASE("truncate_head_tail keeps short text and cuts long text with a marker") {
  CHECK(truncate_head_tail("short", 10).text == "short");
  CHECK_FALSE(truncate_head_tail("short", 10).truncated);

  // 10 lines "line0\n".."line9\n" (60 bytes) into 20: head 10 bytes, tail 10 bytes.
  std::string text;
  for (int i = 0; i < 10; ++i) text += "line" + std::to_string(i) + "\n";
  auto cut = truncate_head_tail(text, 20);
  CHECK(cut.truncated);
  // Cut bytes are text[10, 50): "ne1\nline2\n...line7\nli": 7 newlines.
  CHECK(cut.text == "line0\nline\n[... 40 bytes (7 lines) cut ...]\nne8\nline9\n");
}

TEST_CASE("HeadTailBuffer streamed in pieces equals one append, and never splits a UTF-8 character") {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "row " + std::to_string(i) + " é\n";
  HeadTailBuffer whole(101), pieces(101);
  whole.append(text);
  for (size_t i = 0; i < text.size(); i += 7) pieces.append(std::string_view(text).substr(i, 7));
  CHECK(whole.str() == pieces.str());

  // "aé" + "b"*10 + "éz" (16 bytes) into 4: the 2-byte head is 'a' plus half an 'é' and the 2-byte
  // tail half an 'é' plus 'z'; both halves are dropped and counted as cut.
  HeadTailBuffer buf(4);
  buf.append("a\xc3\xa9" "bbbbbbbbbb" "\xc3\xa9z");
  CHECK(buf.str() == "a\n[... 14 bytes (0 lines) cut ...]\nz");

  CHECK(truncate_head_tail("a\nb", 0).text == "\n[... 3 bytes (1 lines) cut ...]\n");
  CHECK(truncate_head_tail("abc", 1).text == "\n[... 2 bytes (0 lines) cut ...]\nc");
}

TEST_CASE("truncate_head_tail on random text: kept head and tail are the input's own, counts add up") {
  std::mt19937 rng(7);
  const std::string alphabet = "ab\n\xc3\xa9";  // includes a 2-byte character
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    size_t len = rng() % 300;
    while (text.size() < len) {
      size_t k = rng() % 4;
      text += k == 3 ? alphabet.substr(3, 2) : alphabet.substr(k, 1);
    }
    size_t cap = rng() % 120;
    auto cut = truncate_head_tail(text, cap);
    if (text.size() <= cap) {
      CHECK(cut.text == text);
      continue;
    }
    size_t open = cut.text.find("\n[... ");
    size_t close = cut.text.find(" cut ...]\n", open);
    REQUIRE(open != std::string::npos);
    REQUIRE(close != std::string::npos);
    std::string head = cut.text.substr(0, open), tail = cut.text.substr(close + 10);
    CHECK(head.size() <= cap / 2);
    CHECK(tail.size() <= cap - cap / 2);
    CHECK(text.starts_with(head));
    CHECK(text.ends_with(tail));
    std::string middle = text.substr(head.size(), text.size() - head.size() - tail.size());
    std::string expected_marker = "\n[... " + std::to_string(middle.size()) + " bytes (" +
                                  std::to_string(std::count(middle.begin(), middle.end(), '\n')) + " lines) cut ...]\n";
    CHECK(cut.text == head + expected_marker + tail);
    // No character is split: neither part starts or ends inside the 2-byte character.
    CHECK_FALSE((!head.empty() && head.back() == '\xc3'));
    CHECK_FALSE((!tail.empty() && tail.front() == '\xa9'));
  }
}

TEST_CASE("one_line_excerpt: one printable line, cut at a character boundary") {
  CHECK(one_line_excerpt("Traceback:\n  File x\r\n\tError: y\n\n") == "Traceback: File x Error: y");
  CHECK(one_line_excerpt("  lead and trail  ") == "lead and trail");
  // Control bytes and bytes that are not UTF-8 are escaped; valid characters are kept.
  CHECK(one_line_excerpt("a\x1b[0mb caf\xe9 \xc3\xa9 \xed\xa0\x80") == "a\\x1b[0mb caf\\xe9 \xc3\xa9 \\xed\\xa0\\x80");
  CHECK(one_line_excerpt("abcdef", 4) == "abcd...");
  CHECK(one_line_excerpt("ab\xc3\xa9", 3) == "ab...");  // the 2-byte character does not fit
  CHECK(one_line_excerpt(std::string(500, 'z')).size() == 203);
  CHECK(one_line_excerpt("") == "");
}

TEST_CASE("check_arguments: required keys and basic types, nested") {
  json schema = json::parse(R"({"type": "object", "properties": {
      "path": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": ["number", "null"]},
      "tags": {"type": "array", "items": {"type": "string"}},
      "opt": {"type": "object", "properties": {"deep": {"type": "boolean"}}, "required": ["deep"]}},
      "required": ["path"]})");
  CHECK(check_arguments(schema, json::parse(R"({"path": "a", "n": 3, "x": null, "tags": ["t"]})")).ok());
  CHECK(check_arguments(schema, json::parse(R"({"path": "a", "n": 3.0, "x": 1.5})")).ok());
  auto error_of = [&](const char* args) { return check_arguments(schema, json::parse(args)).error().message; };
  CHECK(error_of(R"({})") == "missing required argument 'path'");
  CHECK(error_of(R"({"path": 1})") == "argument 'path': expected string, got integer");
  CHECK(error_of(R"({"path": "a", "n": 1.5})") == "argument 'n': expected integer, got number");
  CHECK(error_of(R"({"path": "a", "x": "s"})") == "argument 'x': expected number or null, got string");
  CHECK(error_of(R"({"path": "a", "tags": ["t", 2]})") == "argument 'tags[1]': expected string, got integer");
  CHECK(error_of(R"({"path": "a", "opt": {}})") == "missing required argument 'opt.deep'");
  CHECK(error_of(R"([1])") == "arguments: expected a JSON object, got array");
}

namespace {

std::unique_ptr<Tool> echo_tool() {
  return make_tool({"echo", "echoes", json::parse(R"({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})")},
                   [](const json& args, ToolContext&) { return Observation{args.at("text").get<std::string>()}; });
}

}  // namespace

TEST_CASE("ToolRegistry: specs in order, calls, and every failure as an is_error observation") {
  ToolRegistry reg;
  reg.add(echo_tool());
  reg.add(make_tool({"throws", "throws", json{{"type", "object"}}},
                    [](const json&, ToolContext&) -> Observation { throw std::runtime_error("disk on fire"); }));
  reg.add(make_tool({"slow", "sleeps", json{{"type", "object"}}}, [](const json&, ToolContext&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    return Observation{"done"};
  }));
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"echo", "throws", "slow"});
  CHECK(reg.has("echo"));
  CHECK_FALSE(reg.has("nope"));

  TempDir dir;
  ToolContext ctx = context_in(dir);
  Observation ok = reg.call({"1", "echo", R"({"text": "hi"})"}, ctx);
  CHECK(ok.text == "hi");
  CHECK_FALSE(ok.is_error);

  auto failed = [&](const ToolCall& c) {
    Observation o = reg.call(c, ctx);
    CHECK(o.is_error);
    return o.text;
  };
  CHECK(failed({"2", "nope", "{}"}) == "unknown tool 'nope'; available tools: echo, throws, slow");
  CHECK(failed({"3", "echo", R"({"text": )"}) == "echo: the arguments are not valid JSON: {\"text\": ");
  CHECK(failed({"4", "echo", ""}) == "echo: missing required argument 'text'");
  CHECK(failed({"5", "echo", R"({"text": 5})"}) == "echo: argument 'text': expected string, got integer");
  CHECK(failed({"6", "throws", "{}"}) == "throws failed: disk on fire");

  Observation slow = reg.call({"7", "slow", "{}"}, ctx);
  CHECK(slow.seconds >= 0.1);
  CHECK(slow.seconds < 5);
}

TEST_CASE("ToolRegistry truncates long observations head+tail to max_output_bytes") {
  ToolRegistry reg;
  reg.add(echo_tool());
  TempDir dir;
  ToolContext ctx = context_in(dir);
  ctx.max_output_bytes = 100;
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + "\n";
  Observation o = call_tool(reg, ctx, "echo", {{"text", text}});
  CHECK(o.truncated);
  CHECK(o.text == truncate_head_tail(text, 100).text);
  CHECK(o.text.find("bytes (") != std::string::npos);
  CHECK(o.text.rfind("line 0\n", 0) == 0);
  CHECK(o.text.ends_with("line 99\n"));
}
