// How RemoteLlm reads failed responses and spaces its retries: Retry-After, exponential backoff with
// full jitter, the server's error message, and "context length exceeded" detection.
#pragma once
#include <cstdint>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace dsa {

// A Retry-After header value (delay-seconds or an HTTP date) as milliseconds from `now`; nullopt
// when it is neither. A date in the past is 0.
std::optional<int64_t> parse_retry_after(std::string_view value, std::time_t now);

// Full jitter: uniform in [0, min(max_ms, base_ms * 2^attempt)]; attempt counts from 0.
int64_t backoff_delay_ms(int attempt, int base_ms, int max_ms, std::mt19937_64& rng);

// HTTP statuses worth another attempt: 408, 429 and 5xx.
bool is_retryable_status(long status);

// The message of an OpenAI-style error body ({"error": {"message"}} , {"error": "..."},
// {"message"}, {"detail"}), else the body itself; flattened to one line of at most 300 bytes.
std::string server_error_message(std::string_view body);
// text for an error message: control characters (newlines, escapes) as spaces, cut to max_bytes at
// a character boundary, with "..." where cut.
std::string one_line(std::string_view text, size_t max_bytes);

// "This model's maximum context length is ...", "context_length_exceeded", "prompt is too long", ...
bool is_context_length_error(std::string_view message);

// A 400 that rejects the requested completion budget rather than the prompt, read as the largest
// max_tokens the server would take for the same request:
//   fixed: the model's own cap ("the valid range of max_tokens is [1, 8192]" from DeepSeek,
//          "supports at most 16384 completion tokens" from OpenAI), true for every later request;
//   room:  the context left after the prompt (vLLM's "maximum context length is 4096 tokens ...
//          (120 in the messages, 32768 in the completion)", SGLang's "... 120 tokens from the input
//          messages ..."), true only for this prompt.
// nullopt when the message is neither or leaves no room (then the prompt itself is too long).
struct CompletionLimit {
  int64_t max_tokens = 0;
  bool fixed = false;
};
std::optional<CompletionLimit> completion_limit(std::string_view message);

}  // namespace dsa
