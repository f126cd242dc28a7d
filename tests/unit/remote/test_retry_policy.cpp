// The retry and error-reading rules on their own: Retry-After, full-jitter backoff, error bodies,
// context-length detection.
#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>

#include "engine/remote/retry_policy.hpp"

using namespace dsa;

TEST_CASE("Retry-After as seconds or as an HTTP date") {
  // 2015-10-21 07:28:00 UTC, computed without the parser.
  std::tm tm{};
  tm.tm_year = 2015 - 1900;
  tm.tm_mon = 9;
  tm.tm_mday = 21;
  tm.tm_hour = 7;
  tm.tm_min = 28;
  std::time_t when = timegm(&tm);

  CHECK(parse_retry_after("2", when) == 2000);
  CHECK(parse_retry_after(" 0 ", when) == 0);
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", when - 7) == 7000);
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", when + 60) == 0);  // already past
  CHECK_FALSE(parse_retry_after("", when).has_value());
  CHECK_FALSE(parse_retry_after("soon", when).has_value());
  CHECK_FALSE(parse_retry_after("1.5", when).has_value());
}

TEST_CASE("backoff is full jitter under an exponentially growing cap") {
  std::mt19937_64 rng(42);
  for (int attempt : {0, 1, 3, 10}) {
    const int64_t cap = std::min<int64_t>(1000, int64_t{100} << attempt);
    int64_t lo = cap, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      int64_t d = backoff_delay_ms(attempt, 100, 1000, rng);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    CAPTURE(attempt);
    CHECK(lo >= 0);
    CHECK(lo < cap / 10);  // the whole range is used, down to ~0 ...
    CHECK(hi <= cap);      // ... and never past the cap
    CHECK(hi > cap * 9 / 10);
  }
  CHECK(backoff_delay_ms(60, 100, 1000, rng) <= 1000);  // no overflow for large attempt numbers
}

TEST_CASE("retryable statuses") {
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) CHECK(is_retryable_status(s));
  for (long s : {400L, 401L, 403L, 404L, 413L, 422L}) CHECK_FALSE(is_retryable_status(s));
}

TEST_CASE("the server's error message from the usual body shapes, on one line") {
  CHECK(server_error_message(R"({"error": {"message": "bad\nrequest", "type": "x"}})") == "bad request");
  CHECK(server_error_message(R"({"error": "plain"})") == "plain");
  CHECK(server_error_message(R"({"object": "error", "message": "vllm says"})") == "vllm says");
  CHECK(server_error_message(R"({"detail": "not found"})") == "not found");
  CHECK(server_error_message("<html>\r\nBad Gateway</html>") == "<html>  Bad Gateway</html>");
  CHECK(server_error_message(std::string(1000, 'x')) == std::string(300, 'x') + "...");
}

TEST_CASE("context-length errors are recognised in the wording of each server") {
  CHECK(is_context_length_error("This model's maximum context length is 131072 tokens."));
  CHECK(is_context_length_error("context_length_exceeded"));
  CHECK(is_context_length_error("The input (140000 tokens) is longer than the model's context length"));
  CHECK(is_context_length_error("Prompt is too long"));
  CHECK_FALSE(is_context_length_error("Invalid 'messages[2]': tool_call_id missing"));
  CHECK_FALSE(is_context_length_error("Rate limit reached"));
}

TEST_CASE("completion_limit reads the completion budget a server names") {
  // DeepSeek and OpenAI: the model's own cap, for every later request too.
  auto ds = completion_limit("Invalid max_tokens value, the valid range of max_tokens is [1, 8192]");
  REQUIRE(ds);
  CHECK(ds->max_tokens == 8192);
  CHECK(ds->fixed);
  auto oa = completion_limit(
      "max_tokens is too large: 32768. This model supports at most 16384 completion tokens, whereas you provided 32768.");
  REQUIRE(oa);
  CHECK(oa->max_tokens == 16384);
  CHECK(oa->fixed);
  // vLLM (both wordings) and SGLang: the room the prompt leaves in the context.
  auto v1 = completion_limit("This model's maximum context length is 32768 tokens. However, you requested 33888 tokens "
                             "(1120 in the messages, 32768 in the completion). Please reduce the length of the messages or completion.");
  REQUIRE(v1);
  CHECK(v1->max_tokens == 32768 - 1120);
  CHECK_FALSE(v1->fixed);
  auto v2 = completion_limit("'max_tokens' or 'max_completion_tokens' is too large: 32768. This model's maximum context length "
                             "is 16384 tokens and your request has 120 input tokens (32768 > 16384 - 120).");
  REQUIRE(v2);
  CHECK(v2->max_tokens == 16384 - 120);
  auto sg = completion_limit("Requested token count exceeds the model's maximum context length of 8192 tokens. You requested "
                             "a total of 40000 tokens: 7232 tokens from the input messages and 32768 tokens for the completion.");
  REQUIRE(sg);
  CHECK(sg->max_tokens == 8192 - 7232);
  // A prompt that alone overflows, and other errors, name no budget.
  CHECK_FALSE(completion_limit("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
                               "(4990 in the messages, 10 in the completion)."));
  CHECK_FALSE(completion_limit("Invalid API key"));
  CHECK_FALSE(completion_limit("prompt is too long"));
}
