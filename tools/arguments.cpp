// Argument checking against a tool's JSON Schema (see arguments.hpp).
#include "tools/arguments.hpp"

#include <cmath>
#include <string>

namespace dsa {

namespace {

const char* type_of(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::boolean: return "boolean";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::null: return "null";
    default: return "unknown";
  }
}

bool has_type(const json& v, const std::string& type) {
  if (type == "number") return v.is_number();
  if (type == "integer")
    return v.is_number_integer() || (v.is_number_float() && std::trunc(v.get<double>()) == v.get<double>());
  return type == type_of(v);
}

// where: "" at the top level, else "argument 'a.b[0]'".
std::string name_at(const std::string& path) { return path.empty() ? "arguments" : "argument '" + path + "'"; }

Result<void> check_value(const json& schema, const json& v, const std::string& path) {
  if (!schema.is_object()) return {};
  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    std::string wanted;
    for (const json& one : t->is_array() ? *t : json::array({*t})) {
      if (!one.is_string()) continue;
      ok = ok || has_type(v, one.get<std::string>());
      wanted += (wanted.empty() ? "" : " or ") + one.get<std::string>();
    }
    if (!wanted.empty() && !ok)
      return make_error(name_at(path) + ": expected " + wanted + ", got " + type_of(v));
  }
  if (v.is_object()) {
    if (auto req = schema.find("required"); req != schema.end() && req->is_array()) {
      for (const json& key : *req)
        if (key.is_string() && !v.contains(key.get<std::string>()))
          return make_error("missing required argument '" + (path.empty() ? "" : path + ".") + key.get<std::string>() + "'");
    }
    if (auto props = schema.find("properties"); props != schema.end() && props->is_object()) {
      for (const auto& [key, value] : v.items()) {
        if (auto p = props->find(key); p != props->end()) {
          auto r = check_value(*p, value, path.empty() ? key : path + "." + key);
          if (!r) return r;
        }
      }
    }
  }
  if (v.is_array()) {
    if (auto items = schema.find("items"); items != schema.end()) {
      for (size_t i = 0; i < v.size(); ++i) {
        auto r = check_value(*items, v[i], path + "[" + std::to_string(i) + "]");
        if (!r) return r;
      }
    }
  }
  return {};
}

}  // namespace

Result<void> check_arguments(const json& schema, const json& args) {
  if (!args.is_object()) return make_error(std::string("arguments: expected a JSON object, got ") + type_of(args));
  return check_value(schema, args, "");
}

}  // namespace dsa
