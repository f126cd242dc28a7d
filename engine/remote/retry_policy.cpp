// Retry and error-reading rules of RemoteLlm (see retry_policy.hpp).
#include "engine/remote/retry_policy.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <regex>

#include "engine/api/types.hpp"

namespace dsa {

std::optional<int64_t> parse_retry_after(std::string_view value, std::time_t now) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  int64_t seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size()) return std::max<int64_t>(seconds, 0) * 1000;
  std::string text(value);
  std::time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return std::max<int64_t>(static_cast<int64_t>(when - now), 0) * 1000;
}

int64_t backoff_delay_ms(int attempt, int base_ms, int max_ms, std::mt19937_64& rng) {
  int64_t cap = base_ms;
  for (int i = 0; i < attempt && cap < max_ms; ++i) cap *= 2;
  cap = std::min<int64_t>(cap, max_ms);
  if (cap <= 0) return 0;
  return std::uniform_int_distribution<int64_t>(0, cap)(rng);
}

bool is_retryable_status(long status) { return status == 408 || status == 429 || status >= 500; }

std::string one_line(std::string_view text, size_t max_bytes) {
  std::string s(text);
  if (s.size() > max_bytes) {
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    s = s.substr(0, cut) + "...";
  }
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  return s;
}

std::string server_error_message(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object()) {
    for (const char* key : {"error", "message", "detail"}) {
      if (!j.contains(key)) continue;
      const json& e = j[key];
      if (e.is_string()) return one_line(e.get<std::string>(), 300);
      if (e.is_object() && e.contains("message") && e["message"].is_string())
        return one_line(e["message"].get<std::string>(), 300);
    }
  }
  return one_line(std::string(body), 300);
}

bool is_context_length_error(std::string_view message) {
  std::string m(message);
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* needle : {"context length", "context_length", "context window", "maximum context",
                             "prompt is too long", "too many tokens"})
    if (m.find(needle) != std::string::npos) return true;
  return false;
}

std::optional<CompletionLimit> completion_limit(std::string_view message) {
  std::string m(message);
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return std::tolower(c); });
  auto number = [&m](const char* pattern) -> std::optional<int64_t> {
    std::smatch hit;
    if (!std::regex_search(m, hit, std::regex(pattern)) || hit[1].length() > 12) return std::nullopt;
    return std::stoll(hit[1].str());
  };
  if (auto top = number(R"(valid range of max_tokens is \[\s*\d+\s*,\s*(\d+)\s*\])"); top && *top > 0)
    return CompletionLimit{*top, true};  // DeepSeek
  if (auto most = number(R"(supports at most (\d+) completion tokens)"); most && *most > 0)
    return CompletionLimit{*most, true};  // OpenAI
  auto context = number(R"(maximum context length (?:is|of) (\d+))");
  auto prompt = number(R"(\((\d+) in the messages)");                         // vLLM, older
  if (!prompt) prompt = number(R"(your request has (\d+) input tokens)");      // vLLM
  if (!prompt) prompt = number(R"((\d+) tokens from the input messages)");     // SGLang
  if (context && prompt && *context > *prompt) return CompletionLimit{*context - *prompt, false};
  return std::nullopt;
}

}  // namespace dsa
