// MCP configuration files and the Tool adapter that exposes a server's tools (see mcp.hpp).
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

#include "tools/mcp.hpp"
#include "tools/policy.hpp"
#include "tools/truncate.hpp"

namespace dsa {

namespace {

std::string tool_name_part(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) c = '_';
  return out;
}

class McpTool final : public Tool {
 public:
  McpTool(std::shared_ptr<McpClient> client, const McpToolInfo& info)
      : client_(std::move(client)),
        tool_(info.name),
        read_only_(info.read_only),
        spec_{tool_name_part(client_->name()) + "__" + tool_name_part(info.name), info.description, info.input_schema} {}

  const ToolSpec& spec() const override { return spec_; }

  Observation call(const json& args, ToolContext& ctx) override {
    if (!read_only_) {
      std::string action = "MCP " + client_->name() + "/" + tool_ + " " + args.dump();
      if (auto ok = approve(ctx, ActionKind::command, action); !ok) return {ok.error().message, true};
    }
    return client_->call_tool(tool_, args, ctx.timeout, ctx.cancel);
  }

 private:
  std::shared_ptr<McpClient> client_;
  std::string tool_;  // the server's own name for the tool
  bool read_only_;
  ToolSpec spec_;
};

}  // namespace

Result<std::vector<McpServerConfig>> parse_mcp_config(const json& config, const std::string& source) {
  if (!config.is_object() || !config.contains("mcpServers") || !config["mcpServers"].is_object())
    return make_error(source + ": expected an object with an \"mcpServers\" object");
  std::vector<McpServerConfig> servers;
  for (const auto& [name, entry] : config["mcpServers"].items()) {
    std::string where = source + ": mcpServers." + name;
    if (!entry.is_object()) return make_error(where + ": expected an object");
    if (!entry.contains("command")) {
      if (entry.contains("url")) return make_error(where + ": only stdio servers (\"command\") are supported, not \"url\"");
      return make_error(where + ": missing \"command\"");
    }
    McpServerConfig s;
    s.name = name;
    if (!entry["command"].is_string() || entry["command"].get<std::string>().empty())
      return make_error(where + ".command: expected a non-empty string");
    s.command = entry["command"].get<std::string>();
    if (entry.contains("args")) {
      const json& args = entry["args"];
      if (!args.is_array()) return make_error(where + ".args: expected an array of strings");
      for (const json& a : args) {
        if (!a.is_string()) return make_error(where + ".args: expected an array of strings");
        s.args.push_back(a.get<std::string>());
      }
    }
    if (entry.contains("env")) {
      const json& env = entry["env"];
      if (!env.is_object()) return make_error(where + ".env: expected an object of strings");
      for (const auto& [k, v] : env.items()) {
        if (!v.is_string()) return make_error(where + ".env." + k + ": expected a string");
        s.env.emplace_back(k, v.get<std::string>());
      }
    }
    servers.push_back(std::move(s));
  }
  return servers;
}

Result<std::vector<McpServerConfig>> load_mcp_config(const std::filesystem::path& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) return make_error(file.string() + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  json config = json::parse(ss.str(), nullptr, false);
  if (config.is_discarded()) return make_error(file.string() + ": not valid JSON");
  return parse_mcp_config(config, file.string());
}

Result<std::vector<std::string>> add_mcp_tools(ToolRegistry& registry, const std::vector<McpServerConfig>& servers,
                                               std::chrono::milliseconds startup_timeout) {
  std::vector<std::string> warnings;
  for (const McpServerConfig& config : servers) {
    const std::string server = "MCP server '" + config.name + "'";
    auto client = McpClient::spawn(config);
    if (!client) return make_error(server + ": " + client.error().message);
    if (auto ok = (*client)->open(startup_timeout); !ok) {
      warnings.push_back(server + " skipped: " + ok.error().message);
      continue;
    }
    for (const std::string& w : (*client)->warnings()) warnings.push_back(server + ": " + w);
    std::vector<std::unique_ptr<Tool>> tools;
    // A server that lists a name twice, or two names that become one as tool names, has a bug the
    // user cannot fix: its first tool of the name is used and the others are left out.
    std::map<std::string, std::string> listed;  // tool name -> the server's own name for it
    std::vector<std::string> repeats;
    for (const McpToolInfo& info : (*client)->tools()) {
      auto tool = std::make_unique<McpTool>(*client, info);
      const std::string& name = tool->spec().name;
      if (auto [first, fresh] = listed.emplace(name, info.name); !fresh) {
        repeats.push_back(first->second == info.name ? info.name
                                                     : info.name + " (as " + name + ", like " + first->second + ")");
        continue;
      }
      if (registry.has(name)) return make_error(server + ": tool name '" + name + "' is already taken");
      tools.push_back(std::move(tool));
    }
    if (!repeats.empty()) {
      std::string names;
      for (const std::string& r : repeats) names += (names.empty() ? "" : ", ") + r;
      warnings.push_back(server + ": left out tools whose names repeat one listed before (the first is kept): " +
                         one_line_excerpt(names));
    }
    for (auto& t : tools) registry.add(std::move(t));
  }
  return warnings;
}

}  // namespace dsa
