// JSON from a checkpoint's files: a nesting limit at parse time, and names and values quoted in
// error lines briefly, on one line, without walking into a value.
#include <doctest/doctest.h>

#include <string>

#include "engine/loader/json_text.hpp"

using namespace dsa;
using nlohmann::json;

namespace {

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

}  // namespace

TEST_CASE("describe_json: scalars as JSON text, containers by kind, never deeper than one level") {
  CHECK(describe_json(json(128)) == "128");
  CHECK(describe_json(json(40.5)) == "40.5");
  CHECK(describe_json(json(true)) == "true");
  CHECK(describe_json(json(nullptr)) == "null");
  CHECK(describe_json(json("big")) == "\"big\"");
  CHECK(describe_json(json::parse("[64, 64]")) == "[64,64]");
  CHECK(describe_json(json::parse("[1, [2]]")) == "an array");
  CHECK(describe_json(json::parse(R"({"a": 1})")) == "an object");
  CHECK(describe_json(json(std::vector<int>(1000, 7))) == "an array of 1000 values");
  // A string: control bytes escaped, cut after 80 bytes.
  CHECK(describe_json(json("deepseek\nsecond \x1b[31mred")) == "\"deepseek\\x0asecond \\x1b[31mred\"");
  const std::string long_value = describe_json(json(std::string(1000000, 'x')));
  CHECK(long_value == "\"" + std::string(80, 'x') + "...\"");
  // A value nested 100000 deep (parsed here without a limit) is described without recursing.
  const json deep = json::parse(nested_arrays(100000));
  CHECK(describe_json(deep) == "an array");
}

TEST_CASE("printable: one line, cut at a character boundary") {
  CHECK(printable("a\nb\tc\x7f") == "a\\x0ab\\x09c\\x7f");
  CHECK(printable("abcdef", 3) == "abc...");
  // "é" is two bytes: a cut inside it backs off to before it.
  CHECK(printable("aé", 2) == "a...");
  CHECK(printable("short", 80) == "short");
  // Bytes that are not UTF-8 (a stray byte, a cut sequence, an overlong form) are escaped one by
  // one; valid characters pass.
  CHECK(printable("a\xff\xfe é \xe2\x82 \xc0\xaf ✓") == "a\\xff\\xfe é \\xe2\\x82 \\xc0\\xaf ✓");
}

TEST_CASE("parse_json_doc: nesting past the limit is an error, not a stack overflow") {
  const JsonDoc shallow = parse_json_doc(nested_arrays(size_t(kMaxJsonDepth)));
  CHECK(shallow.ok());
  const JsonDoc deep = parse_json_doc(R"({"hidden_size": )" + nested_arrays(100000) + "}");
  CHECK_FALSE(deep.ok());
  CHECK(deep.too_deep);
  CHECK(deep.error() == "nested deeper than 64 levels");

  const JsonDoc bad = parse_json_doc("{");
  CHECK_FALSE(bad.ok());
  CHECK(bad.error().starts_with("not valid JSON (parse error at line 1, column 2"));

  CHECK(parse_json_doc(R"({"a": 1, "a": 2})", /*find_duplicate_keys=*/true).duplicate_key == "a");
  CHECK(parse_json_doc(R"({"a": 1, "a": 2})").duplicate_key.empty());
}
