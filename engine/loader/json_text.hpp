// JSON read from a checkpoint's files (config.json, safetensors headers, the shard index,
// tokenizer.json): parsing with a nesting limit, and quoting names and values in one-line errors.
// A file can hold a value nested a hundred thousand deep or a string of a megabyte; nothing here
// recurses into a value or copies more than a short prefix of it into a message.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dsa {

// Far deeper than any checkpoint file nests (a safetensors header is 3 deep, tokenizer.json 5), and
// shallow enough that a recursive walk over a value (a copy, a dump) cannot exhaust the stack.
inline constexpr int kMaxJsonDepth = 64;

struct JsonDoc {
  nlohmann::json value;
  std::string parse_error;     // empty when the text is valid JSON, else "parse error at line 1, ..."
  bool too_deep = false;       // nested deeper than kMaxJsonDepth (value is then unusable)
  std::string duplicate_key;   // the first key repeated inside one object (if looked for), or empty
  size_t duplicate_depth = 0;  // 1: a key of the outermost object
  bool ok() const { return parse_error.empty() && !too_deep; }
  // "not valid JSON (parse error at ...)" or "nested deeper than 64 levels"; empty when ok().
  std::string error() const;
};

// Parses JSON text without ever recursing per nesting level. With find_duplicate_keys, the first
// key repeated inside one object is reported (nlohmann keeps the last value); whether that is an
// error is the caller's call. Without, large objects (a tokenizer's vocabulary) parse faster.
JsonDoc parse_json_doc(std::string_view text, bool find_duplicate_keys = false);

// A name or value from a file as it appears in an error line: control bytes and bytes that are not
// UTF-8 escaped ("\x0a", "\xff") so the message stays one line of valid text and cannot drive the
// terminal, and cut after max_bytes (at a UTF-8 character boundary) with "..." appended.
std::string printable(std::string_view s, size_t max_bytes = 100);

// A JSON value in an error line, briefly: a scalar as JSON text (printable, cut), an array of
// scalars likewise ("[64, 64]"), any other array or object as "an array" / "an object".
std::string describe_json(const nlohmann::json& v);

}  // namespace dsa
