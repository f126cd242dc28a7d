// RemoteLlm: the Llm interface over an OpenAI-compatible /v1/chat/completions server (DeepSeek API,
// vLLM, SGLang), streamed with server-sent events through libcurl.
//
// Failures: 408/429/5xx, connection errors, idle timeouts, streams cut before their finish and
// DeepSeek's "insufficient_system_resource" finish are retried from scratch (exponential backoff
// with full jitter, or the server's Retry-After, capped at retry_max_ms); the returned turn never
// holds text from a failed attempt, though the sink has already shown it. Other 4xx fail at once
// with one line naming the status and the server's message (401/403 also name the key variable);
// a prompt over the server's window fails with "context_length_exceeded: ...". A 400 or 422 that
// names a smaller completion budget (DeepSeek's and OpenAI's per-model caps, vLLM's and SGLang's
// room left after the prompt) is sent again at once with that max_tokens, and a model's cap is kept
// for the requests after it, with one warning. Tool-call arguments that are not a JSON object are
// a FormatError in the turn, not an Error. The API key is sent as `Authorization: Bearer` and never
// appears in an error or warning.
#pragma once
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "engine/api/llm.hpp"
#include "engine/remote/remote_config.hpp"

namespace dsa {

struct CompletionLimit;  // engine/remote/retry_policy.hpp

class RemoteLlm final : public Llm {
 public:
  // Reads the API key from the environment. Errors: a URL that is not http(s), an empty model,
  // a named key variable that is unset.
  static Result<std::unique_ptr<RemoteLlm>> create(RemoteConfig config);

  Result<AssistantTurn> generate(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                                 const GenOptions& options, StreamSink* sink) override;
  // An estimate (ModelInfo::exact_token_count is false), scaled by what the server has reported.
  int64_t count_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking) override;
  ModelInfo info() override;

  // Warnings since the last call, oldest first: skipped malformed chunks, retried attempts.
  std::vector<std::string> take_warnings();

 private:
  struct Attempt;
  RemoteLlm(RemoteConfig config, std::string url, std::string api_key, std::string api_key_env);
  Attempt attempt(const std::string& body, StreamSink* sink);
  std::string redact(std::string text) const;
  void warn(std::string text);
  void observe_prompt_tokens(double estimate, int64_t prompt_tokens);
  // Keeps a model's completion cap for later requests; warns once (and for each new cap).
  void accept_completion_limit(const CompletionLimit& limit);

  RemoteConfig config_;
  std::string url_;
  std::string api_key_;
  std::string api_key_env_;  // where the key came from, named in 401/403 errors (never the key)
  std::mutex mu_;  // guards the members below; generate may run on several threads
  std::vector<std::string> warnings_;
  double token_ratio_ = 1.0;  // server prompt_tokens / estimate
  int64_t max_tokens_cap_ = 0;  // the model's completion cap, once a server has named it (0: none known)
  bool shrink_warned_ = false;
  bool ratio_observed_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace dsa
