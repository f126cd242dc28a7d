// RemoteLlm: request, attempt, classify, retry (see remote_llm.hpp).
#include "engine/remote/remote_llm.hpp"

#include <curl/curl.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "engine/remote/chat_request.hpp"
#include "engine/remote/http_client.hpp"
#include "engine/remote/retry_policy.hpp"
#include "engine/remote/chat_stream_decoder.hpp"
#include "engine/remote/token_estimate.hpp"

namespace dsa {

// The outcome of one HTTP exchange.
struct RemoteLlm::Attempt {
  enum class Kind { ok, stopped, retry, fail, shrink } kind = Kind::fail;
  AssistantTurn turn;
  std::string error;
  std::optional<int64_t> retry_after_ms;
  CompletionLimit limit;  // kind shrink: the completion budget the server would take
};

namespace {
// A completion budget below this that a server offers for the prompt at hand means the prompt has
// filled its context: that is reported as context_length_exceeded, not answered in a few tokens.
constexpr int64_t kMinCompletionRoom = 1024;
}  // namespace

Result<std::unique_ptr<RemoteLlm>> RemoteLlm::create(RemoteConfig config) {
  DSA_TRY(url, chat_completions_url(config.base_url));
  if (config.model.empty()) return make_error("no model name given for the API at " + config.base_url);
  std::string key, key_env;
  if (!config.api_key_env.empty()) {
    const char* v = std::getenv(config.api_key_env.c_str());
    if (!v || !*v) return make_error("API key variable " + config.api_key_env + " is not set");
    key = v;
    key_env = config.api_key_env;
  } else {
    for (const char* name : {"DEEPSEEK_API_KEY", "OPENAI_API_KEY"}) {
      const char* v = std::getenv(name);
      if (v && *v) {
        key = v;
        key_env = name;
        break;
      }
    }
  }
  static std::once_flag curl_init;
  std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::unique_ptr<RemoteLlm>(
      new RemoteLlm(std::move(config), std::move(url), std::move(key), std::move(key_env)));
}

RemoteLlm::RemoteLlm(RemoteConfig config, std::string url, std::string api_key, std::string api_key_env)
    : config_(std::move(config)), url_(std::move(url)), api_key_(std::move(api_key)),
      api_key_env_(std::move(api_key_env)) {}

std::string RemoteLlm::redact(std::string text) const {
  if (api_key_.empty()) return text;
  for (size_t p; (p = text.find(api_key_)) != std::string::npos;) text.replace(p, api_key_.size(), "[api key]");
  return text;
}

void RemoteLlm::warn(std::string text) {
  std::lock_guard<std::mutex> lock(mu_);
  warnings_.push_back(redact(std::move(text)));
}

std::vector<std::string> RemoteLlm::take_warnings() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(warnings_, {});
}

RemoteLlm::Attempt RemoteLlm::attempt(const std::string& body, StreamSink* sink) {
  HttpPost post;
  post.url = url_;
  post.headers = {"Content-Type: application/json", "Accept: text/event-stream", "Expect:"};
  if (!api_key_.empty()) post.headers.push_back("Authorization: Bearer " + api_key_);
  post.body = body;
  post.connect_timeout_ms = config_.connect_timeout_ms;
  post.idle_timeout_ms = config_.idle_timeout_ms;

  ChatStreamDecoder decoder(sink);
  std::string raw;  // a non-streamed body: an error or a plain JSON completion
  bool streaming = false, decided = false;
  auto on_body = [&](std::string_view bytes, long status, std::string_view content_type) {
    if (!decided) {
      decided = true;
      // Some proxies relabel the event stream; its first bytes still say what it is.
      streaming = status == 200 && (content_type.starts_with("text/event-stream") || bytes.starts_with("data:"));
    }
    if (streaming) decoder.feed(bytes);
    else raw.append(bytes);
  };
  auto should_stop = [&] { return sink && sink->should_stop(); };
  HttpOutcome http = http_post(post, on_body, should_stop);

  Attempt a;
  if (http.stopped) {
    a.kind = Attempt::Kind::stopped;
    a.turn = decoder.finish(true);
    return a;
  }
  if (http.status != 200 && http.status != 0 && http.transport_error.empty()) {
    std::string msg = server_error_message(raw);
    // DeepSeek documents 422 for invalid parameters; others answer 400.
    auto limit = http.status == 400 || http.status == 422 ? completion_limit(msg) : std::nullopt;
    if (limit && (limit->fixed || limit->max_tokens >= kMinCompletionRoom)) {
      a.kind = Attempt::Kind::shrink;
      a.limit = *limit;
      a.error = "HTTP " + std::to_string(http.status) + " from " + url_ + ": " + msg;
    } else if ((http.status == 400 || http.status == 413) && is_context_length_error(msg)) {
      a.error = "context_length_exceeded: " + msg;
    } else {
      a.error = "HTTP " + std::to_string(http.status) + " from " + url_ + ": " + msg;
      if (http.status == 401 || http.status == 403)
        a.error += api_key_.empty() ? " (no API key: set DEEPSEEK_API_KEY or OPENAI_API_KEY)"
                                    : " (check the key in " + api_key_env_ + ")";
      if (is_retryable_status(http.status)) {
        a.kind = Attempt::Kind::retry;
        if (auto it = http.headers.find("retry-after"); it != http.headers.end())
          a.retry_after_ms = parse_retry_after(it->second, std::time(nullptr));
      }
    }
    return a;
  }
  if (streaming) {
    if (!decoder.stream_error().empty()) {
      std::string msg = server_error_message(decoder.stream_error());
      if (is_context_length_error(msg)) {
        a.error = "context_length_exceeded: " + msg;
      } else {
        a.kind = Attempt::Kind::retry;
        a.error = "error inside the stream from " + url_ + ": " + msg;
      }
      return a;
    }
    if (!decoder.malformed_chunk().empty()) {
      a.kind = Attempt::Kind::retry;
      a.error = "a malformed chunk in the stream from " + url_ + ": " + decoder.malformed_chunk();
      return a;
    }
    if (!decoder.complete()) {
      a.kind = Attempt::Kind::retry;
      a.error = "stream from " + url_ + " ended before its finish";
      if (!http.transport_error.empty()) a.error += " (" + http.transport_error + ")";
      return a;
    }
    if (decoder.server_interrupted()) {
      a.kind = Attempt::Kind::retry;
      a.error = "server at " + url_ + " interrupted the turn (finish_reason insufficient_system_resource)";
      return a;
    }
    a.kind = Attempt::Kind::ok;
    a.turn = decoder.finish(false);
    return a;
  }
  if (!http.transport_error.empty()) {
    a.kind = Attempt::Kind::retry;
    a.error = "request to " + url_ + " failed: " + http.transport_error;
    return a;
  }
  auto decoded = decoder.decode_json(raw);
  if (!decoded) {
    a.error = url_ + ": " + decoded.error().message;
    return a;
  }
  a.kind = Attempt::Kind::ok;
  a.turn = decoder.finish(false);
  return a;
}

Result<AssistantTurn> RemoteLlm::generate(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                                          const GenOptions& options, StreamSink* sink) {
  GenOptions opts = options;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (max_tokens_cap_ > 0) opts.max_tokens = std::min(opts.max_tokens, max_tokens_cap_);
  }
  std::string body =
      build_chat_request(config_, messages, tools, opts).dump(-1, ' ', false, json::error_handler_t::replace);
  std::string last_error;
  for (int n = 0; n <= config_.max_retries; ++n) {
    Attempt a = attempt(body, sink);
    switch (a.kind) {
      case Attempt::Kind::ok:
        observe_prompt_tokens(estimate_prompt_tokens(messages, tools, options.thinking), a.turn.usage.prompt_tokens);
        return std::move(a.turn);
      case Attempt::Kind::stopped:
        return std::move(a.turn);
      case Attempt::Kind::fail:
        return make_error(redact(a.error));
      case Attempt::Kind::shrink:
        if (a.limit.max_tokens >= opts.max_tokens) return make_error(redact(a.error));
        accept_completion_limit(a.limit);
        opts.max_tokens = a.limit.max_tokens;
        body = build_chat_request(config_, messages, tools, opts).dump(-1, ' ', false, json::error_handler_t::replace);
        --n;  // not a failure of the server: the same attempt again with the budget it takes
        continue;
      case Attempt::Kind::retry:
        break;
    }
    last_error = a.error;
    if (n == config_.max_retries) break;
    int64_t delay_ms;
    {
      std::lock_guard<std::mutex> lock(mu_);
      delay_ms = a.retry_after_ms ? std::min<int64_t>(*a.retry_after_ms, config_.retry_max_ms)
                                  : backoff_delay_ms(n, config_.retry_base_ms, config_.retry_max_ms, rng_);
    }
    const std::string note = "attempt " + std::to_string(n + 1) + " failed: " + a.error + "; retrying in " +
                             std::to_string(delay_ms) + " ms";
    // Said at once, so that a caller streaming the turn drops what the failed attempt sent.
    if (sink)
      sink->on_retry(redact(note));
    else
      warn(note);
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
    while (std::chrono::steady_clock::now() < until) {
      if (sink && sink->should_stop()) return AssistantTurn{};
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(delay_ms, 20)));
    }
  }
  return make_error(redact(last_error + " (gave up after " + std::to_string(config_.max_retries + 1) + " attempts)"));
}

void RemoteLlm::accept_completion_limit(const CompletionLimit& limit) {
  bool first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (limit.fixed) max_tokens_cap_ = limit.max_tokens;
    first = !shrink_warned_;
    shrink_warned_ = true;
  }
  if (first || limit.fixed)
    warn("the server takes at most " + std::to_string(limit.max_tokens) + " completion tokens" +
         (limit.fixed ? "" : " for this prompt") + "; asking for that many");
}

void RemoteLlm::observe_prompt_tokens(double estimate, int64_t prompt_tokens) {
  if (prompt_tokens <= 0 || estimate <= 0) return;
  double observed = static_cast<double>(prompt_tokens) / estimate;
  std::lock_guard<std::mutex> lock(mu_);
  // The first report sets the scale; later ones are averaged in, so it settles on the server's.
  token_ratio_ = ratio_observed_ ? 0.5 * token_ratio_ + 0.5 * observed : observed;
  ratio_observed_ = true;
}

int64_t RemoteLlm::count_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking) {
  double estimate = estimate_prompt_tokens(messages, tools, thinking);
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(std::llround(estimate * token_ratio_));
}

ModelInfo RemoteLlm::info() { return ModelInfo{config_.model, config_.context_window, false}; }

}  // namespace dsa
