// JSON text exactly as Python's json.dumps(value, ensure_ascii=False) writes it: ", " and ": "
// separators, keys in the order given, non-ASCII characters raw. DeepSeek's encoder and parser
// produce prompt text and tool-call arguments this way, and nlohmann's dump() differs (no spaces).
#pragma once
#include <string>
#include <string_view>

#include "engine/api/types.hpp"

namespace dsa {

std::string py_json_dumps(const json& value);
// A JSON string literal for `s` ("..." with Python's escapes: \" \\ \n \r \t \b \f, \u00XX for
// other control characters). Valid UTF-8 is written through unchanged; each invalid byte becomes
// U+FFFD (as Python's decode(errors="replace") would), so the result is always valid JSON.
std::string py_json_string(std::string_view s);

}  // namespace dsa
