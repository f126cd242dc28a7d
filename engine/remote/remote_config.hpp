// RemoteConfig: where and how RemoteLlm talks to an OpenAI-compatible chat-completions server
// (DeepSeek API, vLLM, SGLang, ...). Plain data; RemoteLlm::create validates it.
#pragma once
#include <cstdint>
#include <string>

namespace dsa {

// How thinking on/off is sent. The DeepSeek API takes `thinking: {type: enabled|disabled}`; vLLM
// and SGLang pass `chat_template_kwargs: {thinking: bool}` to the chat template. Servers that
// ignore unknown fields accept both (the default); pick one for a server that rejects the other.
enum class ThinkingDialect { both, deepseek, chat_template };

struct RemoteConfig {
  std::string base_url;     // "http://host:port", "http://host:port/v1" or the full ".../chat/completions"
  std::string model;        // the server's model id
  std::string api_key_env;  // variable holding the key; empty: DEEPSEEK_API_KEY, then OPENAI_API_KEY, else none
  ThinkingDialect thinking_dialect = ThinkingDialect::both;
  int64_t context_window = 0;       // tokens the server accepts, 0 = unknown
  int connect_timeout_ms = 10000;
  int idle_timeout_ms = 300000;     // no byte received for this long aborts the attempt (thinking can be slow)
  int max_retries = 5;              // attempts after the first one
  int retry_base_ms = 1000;         // backoff before retry k is uniform in [0, min(max, base * 2^k)]
  int retry_max_ms = 60000;         // also caps a server's Retry-After
};

}  // namespace dsa
