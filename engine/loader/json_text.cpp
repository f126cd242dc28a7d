// Parsing a checkpoint file's JSON with a nesting limit, and quoting its names and values in errors.
#include "engine/loader/json_text.hpp"

#include <fmt/format.h>

#include <set>
#include <vector>

#include "engine/tokenizer/utf8.hpp"

namespace dsa {

using nlohmann::json;

namespace {

struct TooDeep {};  // thrown from the parser's callback to stop at the first value past the limit

}  // namespace

std::string JsonDoc::error() const {
  if (too_deep) return fmt::format("nested deeper than {} levels", kMaxJsonDepth);
  if (!parse_error.empty()) return "not valid JSON (" + parse_error + ")";
  return {};
}

JsonDoc parse_json_doc(std::string_view text, bool find_duplicate_keys) {
  JsonDoc out;
  std::vector<std::set<std::string>> open_objects;  // the keys seen in each object being read
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // depth counts the containers around this one.
        if (depth >= kMaxJsonDepth) throw TooDeep{};
        if (find_duplicate_keys && event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (find_duplicate_keys && !open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get<std::string>()).second && out.duplicate_key.empty()) {
          out.duplicate_key = parsed.get<std::string>();
          out.duplicate_depth = open_objects.size();
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    out.value = json::parse(text.begin(), text.end(), callback);
  } catch (const TooDeep&) {
    out.value = json();
    out.too_deep = true;
  } catch (const json::exception& e) {
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line 1, column 5: ...".
    const std::string msg = e.what();
    const auto pos = msg.find("] ");
    out.parse_error = printable(pos == std::string::npos ? msg : msg.substr(pos + 2), 200);
  }
  return out;
}

std::string printable(std::string_view s, size_t max_bytes) {
  bool cut = false;
  if (s.size() > max_bytes) {
    size_t end = max_bytes;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xc0) == 0x80) --end;  // not inside a character
    s = s.substr(0, end);
    cut = true;
  }
  std::string out;
  out.reserve(s.size() + 3);
  for (size_t i = 0; i < s.size();) {
    const utf8::Decoded d = utf8::decode_at(s, i);
    if (d.cp == utf8::kInvalid || d.cp < 0x20 || d.cp == 0x7f) {
      for (size_t j = i; j < i + d.len; ++j) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(s[j]));
    } else {
      out.append(s.substr(i, d.len));
    }
    i += d.len;
  }
  if (cut) out += "...";
  return out;
}

std::string describe_json(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_string()) return "\"" + printable(v.get_ref<const std::string&>(), 80) + "\"";
  if (v.is_array()) {
    for (const json& item : v)
      if (item.is_structured()) return "an array";
    if (v.size() > 16) return "an array of " + std::to_string(v.size()) + " values";
  }
  // A number, true, false, null, or a short array of them: dump() goes at most one level deep. The
  // replace handler keeps invalid UTF-8 in a string from throwing.
  return printable(v.dump(-1, ' ', false, json::error_handler_t::replace), 80);
}

}  // namespace dsa
