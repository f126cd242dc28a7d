// MCP results checked member by member (see mcp_results.hpp).
#include "tools/mcp_results.hpp"

#include <string_view>

namespace dsa {

namespace {

// "a number", "an object", "null".
std::string a_type(const json& v) {
  std::string name = v.type_name();
  if (v.is_null()) return name;
  return (name[0] == 'a' || name[0] == 'o' ? "an " : "a ") + name;
}

// Reads the members of one JSON object. `path` names the object inside the result ("tools[2]"),
// and the first member of a wrong type becomes the error.
class Members {
 public:
  Members(const json& object, std::string path) : object_(object), path_(std::move(path)) {}

  // The member, or nullptr when it is absent or null.
  const json* find(std::string_view key) const {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  Result<std::string> string(std::string_view key, std::string fallback = "") const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) return wrong(key, *v, "a string");
    return v->get<std::string>();
  }

  Result<bool> boolean(std::string_view key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) return wrong(key, *v, "a boolean");
    return v->get<bool>();
  }

  // The member, checked to be an object; nullptr when absent.
  Result<const json*> object(std::string_view key) const {
    const json* v = find(key);
    if (v && !v->is_object()) return wrong(key, *v, "an object");
    return v;
  }

  // The member, checked to be an array; nullptr when absent.
  Result<const json*> array(std::string_view key) const {
    const json* v = find(key);
    if (v && !v->is_array()) return wrong(key, *v, "an array");
    return v;
  }

  std::string path_of(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  Error wrong(std::string_view key, const json& v, const char* expected) const {
    return make_error(path_of(key) + " is " + a_type(v) + ", expected " + expected);
  }

 private:
  const json& object_;
  std::string path_;
};

// The elements of `array` (named `path`), each checked to be an object.
Result<std::vector<Members>> objects_in(const json& array, const std::string& path) {
  std::vector<Members> out;
  for (size_t i = 0; i < array.size(); ++i) {
    std::string item = path + "[" + std::to_string(i) + "]";
    if (!array[i].is_object()) return make_error(item + " is " + a_type(array[i]) + ", expected an object");
    out.emplace_back(array[i], item);
  }
  return out;
}

Error in_result(const char* method, const Error& e) {
  return make_error(std::string(method) + " result: " + e.message);
}

Result<McpToolInfo> parse_tool(const Members& t) {
  McpToolInfo info;
  if (!t.find("name")) return make_error(t.path_of("name") + " is missing");
  DSA_TRY(name, t.string("name"));
  info.name = std::move(name);
  DSA_TRY(description, t.string("description"));
  info.description = std::move(description);
  DSA_TRY(schema, t.object("inputSchema"));
  info.input_schema = schema ? *schema : json{{"type", "object"}};
  DSA_TRY(annotations, t.object("annotations"));
  if (annotations) {
    DSA_TRY(read_only, Members(*annotations, t.path_of("annotations")).boolean("readOnlyHint", false));
    info.read_only = read_only;
  }
  return info;
}

// One content item of a tools/call result as text (MCP 2025-11-25 content types).
Result<std::string> render_item(const Members& item) {
  DSA_TRY(type, item.string("type"));
  if (type == "text") return item.string("text");
  if (type == "image" || type == "audio") {
    DSA_TRY(mime, item.string("mimeType", "?"));
    DSA_TRY(data, item.string("data"));
    return "[" + type + ": " + mime + ", " + std::to_string(data.size()) + " bytes of base64]";
  }
  if (type == "resource_link") {
    DSA_TRY(uri, item.string("uri", "?"));
    DSA_TRY(name, item.string("name"));
    return "[resource link: " + uri + " " + name + "]";
  }
  if (type == "resource") {
    DSA_TRY(resource, item.object("resource"));
    if (resource) {
      Members r(*resource, item.path_of("resource"));
      DSA_TRY(text, r.string("text"));
      if (r.find("text")) return text;
      DSA_TRY(uri, r.string("uri", "?"));
      DSA_TRY(mime, r.string("mimeType", "binary"));
      return "[resource: " + uri + " (" + mime + ")]";
    }
  }
  return type.empty() ? std::string("[untyped content]") : "[" + type + " content]";
}

}  // namespace

Result<std::string> parse_initialize_result(const json& result) {
  auto version = Members(result, "").string("protocolVersion");
  if (!version) return in_result("initialize", version.error());
  return version;
}

Result<McpToolsPage> parse_tools_page(const json& result) {
  Members page(result, "");
  auto parse = [&]() -> Result<McpToolsPage> {
    McpToolsPage out;
    DSA_TRY(tools, page.array("tools"));
    if (!tools) return make_error("tools is missing");
    DSA_TRY(items, objects_in(*tools, "tools"));
    for (const Members& t : items) {
      DSA_TRY(info, parse_tool(t));
      out.tools.push_back(std::move(info));
    }
    DSA_TRY(cursor, page.string("nextCursor"));
    if (page.find("nextCursor")) out.next_cursor = std::move(cursor);
    return out;
  };
  auto out = parse();
  if (!out) return in_result("tools/list", out.error());
  return out;
}

Result<Observation> parse_call_result(const json& result) {
  Members call(result, "");
  auto parse = [&]() -> Result<Observation> {
    Observation obs;
    DSA_TRY(content, call.array("content"));
    if (content) {
      DSA_TRY(items, objects_in(*content, "content"));
      for (const Members& item : items) {
        DSA_TRY(text, render_item(item));
        if (!obs.text.empty()) obs.text += '\n';
        obs.text += text;
      }
    }
    if (obs.text.empty())
      if (const json* structured = call.find("structuredContent")) obs.text = structured->dump();
    DSA_TRY(is_error, call.boolean("isError", false));
    obs.is_error = is_error;
    return obs;
  };
  auto out = parse();
  if (!out) return in_result("tools/call", out.error());
  return out;
}

std::string describe_rpc_error(const json& error) {
  std::string message = error.dump();
  int64_t code = 0;
  if (error.is_object()) {
    if (auto it = error.find("message"); it != error.end() && it->is_string()) message = it->get<std::string>();
    if (auto it = error.find("code"); it != error.end() && it->is_number_integer()) code = it->get<int64_t>();
  }
  return message + " (JSON-RPC error " + std::to_string(code) + ")";
}

}  // namespace dsa
