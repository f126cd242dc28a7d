// Command tools: a JSON spec plus a shell-script executable reading its arguments on stdin.
#include <doctest/doctest.h>

#include "tools/command_plugin.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;
namespace fs = std::filesystem;

namespace {

struct PluginFixture {
  TempDir plugins{"dsa-plugins"};
  TempDir work{"dsa-plugin-work"};
  ToolContext ctx = context_in(work);

  // Writes plugins/<name>.json and an executable plugins/<name>.sh with the given body.
  fs::path add(const std::string& name, const std::string& script, const json& parameters) {
    write_text(plugins / (name + ".sh"), "#!/bin/bash\n" + script);
    fs::permissions(plugins / (name + ".sh"), fs::perms::owner_all);
    json spec = {{"name", name}, {"description", "the " + name + " plugin"}, {"parameters", parameters}, {"command", "./" + name + ".sh"}};
    write_text(plugins / (name + ".json"), spec.dump(2));
    return plugins / (name + ".json");
  }
};

const json kTextParams = json::parse(R"({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})");

}  // namespace

TEST_CASE("a command plugin gets its arguments as JSON on stdin and runs in the work dir") {
  PluginFixture f;
  // Echoes stdin and the directory it runs in.
  fs::path spec = f.add("echo_args", "cat; echo; pwd\n", kTextParams);
  ToolRegistry reg;
  REQUIRE(add_command_tools(reg, {spec}).ok());
  REQUIRE(reg.specs().size() == 1);
  CHECK(reg.specs()[0].name == "echo_args");
  CHECK(reg.specs()[0].description == "the echo_args plugin");
  CHECK(reg.specs()[0].parameters == kTextParams);
  Observation o = call_tool(reg, f.ctx, "echo_args", {{"text", "hi \"there\""}});
  CHECK_FALSE(o.is_error);
  CHECK(o.text == "{\"text\":\"hi \\\"there\\\"\"}\n" + fs::canonical(f.work.path()).string() + "\n");
}

TEST_CASE("a plugin that succeeds writing only to stderr gives that text") {
  PluginFixture f;
  ToolRegistry reg;
  REQUIRE(add_command_tools(reg, {f.add("stderr_only", "echo 'said on stderr' >&2\n", kTextParams)}).ok());
  Observation o = call_tool(reg, f.ctx, "stderr_only", {{"text", "x"}});
  CHECK_FALSE(o.is_error);
  CHECK(o.text == "said on stderr\n");
}

TEST_CASE("a failing plugin is an error observation with its stderr; timeouts kill it") {
  PluginFixture f;
  ToolRegistry reg;
  REQUIRE(add_command_tools(reg, {f.add("fails", "echo 'some output'; echo 'bad text: too short' >&2; exit 4\n", kTextParams),
                                  f.add("quiet_fail", "echo 'only stdout'; exit 1\n", kTextParams),
                                  f.add("sleeper", "sleep 300\n", json{{"type", "object"}})})
              .ok());
  Observation failed = call_tool(reg, f.ctx, "fails", {{"text", "x"}});
  CHECK(failed.is_error);
  CHECK(failed.text == "fails failed (exit code 4): bad text: too short");
  CHECK(call_tool(reg, f.ctx, "quiet_fail", {{"text", "x"}}).text == "quiet_fail failed (exit code 1): only stdout");
  f.ctx.timeout = std::chrono::seconds(1);
  Observation slept = call_tool(reg, f.ctx, "sleeper", json::object());
  CHECK(slept.is_error);
  CHECK(slept.text == "sleeper: timed out after 1 s and was killed");
  CHECK(slept.seconds < 5);
}

TEST_CASE("plugins count as commands for approval") {
  PluginFixture f;
  ToolRegistry reg;
  REQUIRE(add_command_tools(reg, {f.add("touches", "touch made\n", json{{"type", "object"}})}).ok());
  f.ctx.approval = ApprovalMode::read_only;
  Observation o = call_tool(reg, f.ctx, "touches", json::object());
  CHECK(o.text == "refused: read-only mode allows no commands (touches {})");
  CHECK_FALSE(fs::exists(f.work / "made"));
}

TEST_CASE("bad plugin spec files give one clear error") {
  PluginFixture f;
  auto error_of = [&](const std::string& text) {
    write_text(f.plugins / "p.json", text);
    return load_command_tool(f.plugins / "p.json").error().message;
  };
  std::string src = (f.plugins / "p.json").string();
  CHECK(error_of("[1]") == src + ": not a JSON object");
  CHECK(error_of(R"({"command": "x"})") == src + ": name: expected a non-empty string");
  CHECK(error_of(R"({"name": "p"})") == src + ": command: expected a string or a non-empty array of strings");
  CHECK(error_of(R"({"name": "p", "command": ["a", 1]})") == src + ": command: expected a string or an array of strings");
  CHECK(error_of(R"({"name": "p", "parameters": [], "command": "x"})") == src + ": parameters: expected a JSON Schema object");
  CHECK(error_of(R"({"name": "p", "command": "./missing.sh"})") == src + ": command: " + (f.plugins / "missing.sh").string() + " does not exist");
  CHECK(load_command_tool(f.plugins / "none.json").error().message == (f.plugins / "none.json").string() + ": cannot open");
  CHECK(error_of(R"({"name": "my tool!", "command": "true"})") ==
        src + ": name: 'my tool!' is not a tool name (letters, digits, '_' and '-', at most 64)");
  CHECK(error_of(R"({"name": "p", "parameters": {"type": "string"}, "command": "true"})") ==
        src + ": parameters: the schema's \"type\" must be \"object\"");
  CHECK(error_of(R"({"name": "p", "parameters": {"type": "object", "properties": []}, "command": "true"})") ==
        src + ": parameters: \"properties\" must be an object");
  CHECK(error_of(R"({"name": "p", "command": "no-such-program-dsa"})") ==
        src + ": command: no-such-program-dsa is not on PATH");
  CHECK(load_command_tool(
            (write_text(f.plugins / "ok.json", R"({"name": "ok-1", "command": "true"})"), f.plugins / "ok.json"))
            .ok());

  ToolRegistry reg;
  fs::path spec = f.add("dup", "true\n", json{{"type", "object"}});
  REQUIRE(add_command_tools(reg, {spec}).ok());
  CHECK(add_command_tools(reg, {spec}).error().message == spec.string() + ": tool name 'dup' is already taken");
}

TEST_CASE("a plugin command given as an argv array runs an interpreter on a script beside the spec") {
  PluginFixture f;
  write_text(f.plugins / "upper.sh", "tr a-z A-Z\n");
  write_text(f.plugins / "upper.json", R"({"name": "upper", "command": ["bash", "./upper.sh"]})");
  ToolRegistry reg;
  REQUIRE(add_command_tools(reg, {f.plugins / "upper.json"}).ok());
  CHECK(reg.specs()[0].parameters == json::parse(R"({"type": "object", "properties": {}})"));
  CHECK(call_tool(reg, f.ctx, "upper", json::object()).text == "{}");
  CHECK(call_tool(reg, f.ctx, "upper", {{"k", "v"}}).text == R"({"K":"V"})");
}
