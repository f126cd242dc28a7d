// Inline JSON conversions for engine/api/types.hpp (engine/api is header-only).
#pragma once

namespace dsa {

inline const char* role_name(Role r) {
  switch (r) {
    case Role::system: return "system";
    case Role::user: return "user";
    case Role::developer: return "developer";
    case Role::assistant: return "assistant";
    case Role::tool: return "tool";
  }
  return "?";
}

inline std::optional<Role> parse_role(std::string_view s) {
  if (s == "system") return Role::system;
  if (s == "user") return Role::user;
  if (s == "developer") return Role::developer;
  if (s == "assistant") return Role::assistant;
  if (s == "tool") return Role::tool;
  return std::nullopt;
}

inline json to_json(const ToolCall& c) {
  return json{{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
}

inline json to_json(const Message& m) {
  json j{{"role", role_name(m.role)}, {"content", m.content}};
  if (m.reasoning_content) j["reasoning_content"] = *m.reasoning_content;
  if (!m.tool_calls.empty()) {
    j["tool_calls"] = json::array();
    for (const auto& c : m.tool_calls) j["tool_calls"].push_back(to_json(c));
  }
  if (m.role == Role::tool) j["tool_call_id"] = m.tool_call_id;
  if (m.response_format) j["response_format"] = *m.response_format;
  return j;
}

inline json to_json(const ToolSpec& t) {
  return json{{"type", "function"},
              {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}}}};
}

inline json to_json(const Usage& u) {
  return json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"cached_tokens", u.cached_tokens},
              {"reasoning_tokens", u.reasoning_tokens}};
}

inline std::optional<ToolCall> tool_call_from_json(const json& j, std::string* err) {
  if (!j.is_object()) {
    if (err) *err = "tool call is not an object";
    return std::nullopt;
  }
  ToolCall c;
  if (j.contains("id") && j["id"].is_string()) c.id = j["id"].get<std::string>();
  const json& f = j.contains("function") ? j["function"] : j;
  if (!f.contains("name") || !f["name"].is_string()) {
    if (err) *err = "tool call has no function name";
    return std::nullopt;
  }
  c.name = f["name"].get<std::string>();
  if (f.contains("arguments")) {
    const json& a = f["arguments"];
    c.arguments = a.is_string() ? a.get<std::string>() : a.dump();
  } else {
    c.arguments = "{}";
  }
  return c;
}

inline std::optional<Message> message_from_json(const json& j, std::string* err) {
  if (!j.is_object() || !j.contains("role") || !j["role"].is_string()) {
    if (err) *err = "message has no role";
    return std::nullopt;
  }
  auto role = parse_role(j["role"].get<std::string>());
  if (!role) {
    if (err) *err = "unknown role '" + j["role"].get<std::string>() + "'";
    return std::nullopt;
  }
  Message m;
  m.role = *role;
  if (j.contains("content") && j["content"].is_string()) m.content = j["content"].get<std::string>();
  if (j.contains("reasoning_content") && j["reasoning_content"].is_string())
    m.reasoning_content = j["reasoning_content"].get<std::string>();
  if (j.contains("tool_calls") && j["tool_calls"].is_array()) {
    for (const auto& tc : j["tool_calls"]) {
      auto c = tool_call_from_json(tc, err);
      if (!c) return std::nullopt;
      m.tool_calls.push_back(std::move(*c));
    }
  }
  if (j.contains("tool_call_id") && j["tool_call_id"].is_string())
    m.tool_call_id = j["tool_call_id"].get<std::string>();
  if (j.contains("response_format")) m.response_format = j["response_format"];
  return m;
}

inline std::optional<ToolSpec> tool_spec_from_json(const json& j, std::string* err) {
  const json& f = (j.is_object() && j.contains("function")) ? j["function"] : j;
  if (!f.is_object() || !f.contains("name") || !f["name"].is_string()) {
    if (err) *err = "tool spec has no name";
    return std::nullopt;
  }
  ToolSpec t;
  t.name = f["name"].get<std::string>();
  if (f.contains("description") && f["description"].is_string()) t.description = f["description"].get<std::string>();
  if (f.contains("parameters")) t.parameters = f["parameters"];
  return t;
}

}  // namespace dsa
