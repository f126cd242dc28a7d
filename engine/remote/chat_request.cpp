// Builds chat-completions requests (see chat_request.hpp).
#include "engine/remote/chat_request.hpp"

namespace dsa {

Result<std::string> chat_completions_url(const std::string& base_url) {
  std::string url = base_url;
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
    return make_error("API URL '" + base_url + "' must start with http:// or https://");
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto ends_with = [&](std::string_view s) { return url.size() >= s.size() && url.ends_with(s); };
  if (ends_with("/chat/completions")) return url;
  if (ends_with("/v1")) return url + "/chat/completions";
  return url + "/v1/chat/completions";
}

static json message_json(const Message& m, json& response_format) {
  Message copy = m;
  if (m.role == Role::assistant) {
    if (!m.tool_calls.empty()) {
      if (!copy.reasoning_content) copy.reasoning_content = "";
    } else {
      copy.reasoning_content.reset();
    }
  }
  if (copy.response_format) {
    response_format = json{{"type", "json_schema"},
                           {"json_schema", {{"name", "response"}, {"schema", *copy.response_format}}}};
    copy.response_format.reset();
  }
  return to_json(copy);
}

json build_chat_request(const RemoteConfig& config, const std::vector<Message>& messages,
                        std::span<const ToolSpec> tools, const GenOptions& options) {
  json response_format;
  json msgs = json::array();
  for (const auto& m : messages) msgs.push_back(message_json(m, response_format));

  json body{{"model", config.model}, {"messages", std::move(msgs)}};
  if (!tools.empty()) {
    body["tools"] = json::array();
    for (const auto& t : tools) body["tools"].push_back(to_json(t));
  }
  if (!response_format.is_null()) body["response_format"] = std::move(response_format);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  body["temperature"] = options.temperature;
  body["top_p"] = options.top_p;
  if (options.top_k > 0) body["top_k"] = options.top_k;
  body["max_tokens"] = options.max_tokens;
  body["seed"] = options.seed;
  if (!options.stop.empty()) body["stop"] = options.stop;
  if (config.thinking_dialect != ThinkingDialect::chat_template)
    body["thinking"] = {{"type", options.thinking ? "enabled" : "disabled"}};
  if (config.thinking_dialect != ThinkingDialect::deepseek)
    body["chat_template_kwargs"] = {{"thinking", options.thinking}};
  return body;
}

}  // namespace dsa
