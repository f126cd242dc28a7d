// Command tools: a JSON spec plus an executable (see command_plugin.hpp).
#include "tools/command_plugin.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tools/policy.hpp"
#include "tools/process.hpp"
#include "tools/truncate.hpp"

namespace dsa {

namespace fs = std::filesystem;

namespace {

class CommandTool final : public Tool {
 public:
  CommandTool(ToolSpec spec, std::vector<std::string> argv) : spec_(std::move(spec)), argv_(std::move(argv)) {}
  const ToolSpec& spec() const override { return spec_; }

  Observation call(const json& args, ToolContext& ctx) override {
    const std::string& name = spec_.name;
    if (auto ok = approve(ctx, ActionKind::command, name + " " + args.dump()); !ok) return {ok.error().message, true};
    auto workdir = resolve_in_workdir(ctx, ".");
    if (!workdir) return {name + ": " + workdir.error().message, true};
    ProcessSpec spec;
    spec.argv = argv_;
    spec.cwd = *workdir;
    spec.stdin_pipe = true;
    auto run = run_process(spec, args.dump(), ctx.timeout, ctx.cancel, ctx.max_output_bytes);
    if (!run) return {name + ": " + run.error().message, true};
    if (run->timed_out) return {name + ": timed out after " + std::to_string(ctx.timeout.count()) + " s and was killed", true};
    if (run->cancelled) return {name + ": cancelled", true};
    if (run->status.exit_code != 0) {
      std::string detail = run->err.empty() ? run->out : run->err;
      while (!detail.empty() && detail.back() == '\n') detail.pop_back();
      return {name + " failed (" + run->status.describe() + ")" + (detail.empty() ? "" : ": " + detail), true};
    }
    // A plugin that succeeded but wrote only to stderr: that is what it had to say.
    if (run->out.empty() && !run->err.empty()) return {run->err, false};
    return {run->out, false, 0, run->out_truncated};
  }

 private:
  ToolSpec spec_;
  std::vector<std::string> argv_;
};

}  // namespace

namespace {

// Whether a program name without '/' is an executable in a PATH directory, as execvp finds it.
bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / program;
    if (::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return true;
  }
  return false;
}

}  // namespace

Result<std::unique_ptr<Tool>> load_command_tool(const fs::path& spec_file) {
  std::string src = spec_file.string();
  std::ifstream f(spec_file, std::ios::binary);
  if (!f) return make_error(src + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error(src + ": not a JSON object");
  ToolSpec spec;
  if (!j.contains("name") || !j["name"].is_string() || j["name"].get<std::string>().empty())
    return make_error(src + ": name: expected a non-empty string");
  spec.name = j["name"].get<std::string>();
  // The names function calling takes (OpenAI's, and the DSML invoke's attribute).
  if (spec.name.size() > 64 || !std::all_of(spec.name.begin(), spec.name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      }))
    return make_error(src + ": name: '" + one_line_excerpt(spec.name, 80) +
                      "' is not a tool name (letters, digits, '_' and '-', at most 64)");
  if (j.contains("description")) {
    if (!j["description"].is_string()) return make_error(src + ": description: expected a string");
    spec.description = j["description"].get<std::string>();
  }
  spec.parameters = json{{"type", "object"}, {"properties", json::object()}};
  if (j.contains("parameters")) {
    const json& params = j["parameters"];
    if (!params.is_object()) return make_error(src + ": parameters: expected a JSON Schema object");
    // Arguments are a JSON object: the schema describes one.
    if (params.value("type", "") != "object")
      return make_error(src + ": parameters: the schema's \"type\" must be \"object\"");
    if (params.contains("properties") && !params["properties"].is_object())
      return make_error(src + ": parameters: \"properties\" must be an object");
    if (params.contains("required") && !params["required"].is_array())
      return make_error(src + ": parameters: \"required\" must be an array of names");
    spec.parameters = params;
  }
  std::vector<std::string> argv;
  const json& cmd = j.contains("command") ? j["command"] : json();
  if (cmd.is_string()) argv.push_back(cmd.get<std::string>());
  if (cmd.is_array())
    for (const json& a : cmd) {
      if (!a.is_string()) return make_error(src + ": command: expected a string or an array of strings");
      argv.push_back(a.get<std::string>());
    }
  if (argv.empty() || argv[0].empty()) return make_error(src + ": command: expected a string or a non-empty array of strings");
  auto beside_spec = [&](std::string& a) { a = (fs::absolute(spec_file).parent_path() / a).lexically_normal().string(); };
  if (argv[0].find('/') != std::string::npos && argv[0][0] != '/') beside_spec(argv[0]);
  for (size_t i = 1; i < argv.size(); ++i)
    if (argv[i].rfind("./", 0) == 0 || argv[i].rfind("../", 0) == 0) beside_spec(argv[i]);
  std::error_code ec;
  if (argv[0].find('/') != std::string::npos && !fs::exists(argv[0], ec))
    return make_error(src + ": command: " + argv[0] + " does not exist");
  if (argv[0].find('/') == std::string::npos && !on_path(argv[0]))
    return make_error(src + ": command: " + argv[0] + " is not on PATH");
  return std::unique_ptr<Tool>(std::make_unique<CommandTool>(std::move(spec), std::move(argv)));
}

Result<void> add_command_tools(ToolRegistry& registry, const std::vector<fs::path>& spec_files) {
  for (const fs::path& file : spec_files) {
    DSA_TRY(tool, load_command_tool(file));
    if (registry.has(tool->spec().name))
      return make_error(file.string() + ": tool name '" + tool->spec().name + "' is already taken");
    registry.add(std::move(tool));
  }
  return {};
}

}  // namespace dsa
