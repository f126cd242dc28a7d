// Shared pieces of the remote tests: SSE chunk builders, a recording sink, whole-turn comparison.
#pragma once
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/api/llm.hpp"
#include "engine/remote/remote_config.hpp"
#include "tests/http_test_server.hpp"

namespace dsa::test {

inline constexpr const char* kTestKeyEnv = "DSA_REMOTE_TEST_API_KEY";
inline constexpr const char* kTestKey = "sk-test-5ecret-key-0123";

// A config for the loopback server with tiny retry delays.
inline RemoteConfig test_config(const std::string& base_url) {
  ::setenv(kTestKeyEnv, kTestKey, 1);
  RemoteConfig c;
  c.base_url = base_url;
  c.model = "deepseek-chat";
  c.api_key_env = kTestKeyEnv;
  c.connect_timeout_ms = 2000;
  c.idle_timeout_ms = 5000;
  c.max_retries = 3;
  c.retry_base_ms = 1;
  c.retry_max_ms = 20;
  return c;
}

// One `data:` event holding a chat.completion.chunk with this delta (and finish_reason if given).
inline std::string delta_event(const json& delta, const char* finish_reason = nullptr) {
  json choice{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}};
  if (finish_reason) choice["finish_reason"] = finish_reason;
  json chunk{{"id", "chatcmpl-1"}, {"object", "chat.completion.chunk"}, {"model", "deepseek-chat"},
             {"choices", json::array({choice})}};
  return "data: " + chunk.dump() + "\n\n";
}

inline std::string usage_event(const json& usage) {
  json chunk{{"id", "chatcmpl-1"}, {"object", "chat.completion.chunk"}, {"choices", json::array()}, {"usage", usage}};
  return "data: " + chunk.dump() + "\n\n";
}

inline const std::string kDone = "data: [DONE]\n\n";

// A complete short answer: content "Hello" and finish stop.
inline std::vector<std::string> hello_events() {
  return {delta_event({{"role", "assistant"}, {"content", "Hel"}}), delta_event({{"content", "lo"}}),
          delta_event(json::object(), "stop"), kDone};
}

// Records what the sink is told, in order, as "reasoning:...", "content:...", "tool:id name args",
// "retry:reason".
class RecordingSink : public StreamSink {
 public:
  void on_reasoning(std::string_view d) override { events.push_back("reasoning:" + std::string(d)); }
  void on_content(std::string_view d) override {
    events.push_back("content:" + std::string(d));
    ++n_content;
  }
  void on_tool_call(const ToolCall& c) override { events.push_back("tool:" + c.id + " " + c.name + " " + c.arguments); }
  void on_retry(std::string_view reason) override { events.push_back("retry:" + std::string(reason)); }
  bool should_stop() override { return stop_after_content > 0 && n_content >= stop_after_content; }

  std::vector<std::string> events;
  int n_content = 0;
  int stop_after_content = 0;  // > 0: ask to stop once this many content deltas arrived
};

// The whole turn as JSON, so tests compare every field at once.
inline json turn_json(const AssistantTurn& t) {
  json calls = json::array();
  for (const auto& c : t.tool_calls) calls.push_back(to_json(c));
  static const char* finish_names[] = {"stop", "length", "tool_calls", "error"};
  return json{{"reasoning", t.reasoning},
              {"content", t.content},
              {"tool_calls", calls},
              {"usage", to_json(t.usage)},
              {"finish", finish_names[static_cast<int>(t.finish)]},
              {"format_error", t.format_error ? t.format_error->message : ""}};
}

}  // namespace dsa::test
