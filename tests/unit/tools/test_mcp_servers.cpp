// The MCP client against real servers from PyPI: the FastMCP test server of
// tests/golden/mcp_test_server.py and the published mcp-server-time. Both come from the project
// venv (scripts/python-env.sh mcp); without it these cases print "skipped: ..." and pass.
#include <doctest/doctest.h>

#include <ctime>

#include "tools/mcp.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;
namespace fs = std::filesystem;

namespace {

fs::path venv_bin(const std::string& program) { return source_dir() / ".venv" / "bin" / program; }

// The venv's python with the mcp package importable, or a reason to skip.
std::optional<std::string> missing_python_mcp() {
  if (!fs::exists(venv_bin("python"))) return "no project venv at " + venv_bin("python").string() + " (run scripts/python-env.sh mcp)";
  if (run_command(venv_bin("python").string() + " -c 'import mcp' 2>&1").exit_code != 0)
    return "the mcp package is not installed in the project venv (run scripts/python-env.sh mcp)";
  return std::nullopt;
}

std::vector<std::string> tool_names(const ToolRegistry& reg) {
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  return names;
}

}  // namespace

TEST_CASE("MCP against the FastMCP test server: list, call, isError, hang, crash") {
  if (auto why = missing_python_mcp()) {
    MESSAGE("skipped: FastMCP server cases: " << *why);
    return;
  }
  McpServerConfig config{"py", venv_bin("python").string(), {(source_dir() / "tests/golden/mcp_test_server.py").string()}, {}};
  ToolRegistry reg;
  auto added = add_mcp_tools(reg, {config});
  REQUIRE_MESSAGE(added.ok(), (added.ok() ? "" : added.error().message));
  CHECK(tool_names(reg) == std::vector<std::string>{"py__add", "py__fail", "py__hang", "py__crash"});
  CHECK(reg.specs()[0].parameters["required"] == json::array({"a", "b"}));

  TempDir work;
  ToolContext ctx = context_in(work);
  ctx.timeout = std::chrono::seconds(2);
  Observation sum = call_tool(reg, ctx, "py__add", {{"a", 2}, {"b", 40}});
  CHECK_FALSE(sum.is_error);
  CHECK(sum.text == "2 + 40 = 42");

  Observation failed = call_tool(reg, ctx, "py__fail", {{"reason", "testing"}});
  CHECK(failed.is_error);
  CHECK(failed.text == "Error executing tool fail: failed on purpose: testing");

  Observation hung = call_tool(reg, ctx, "py__hang", {{"seconds", 30}});
  CHECK(hung.is_error);
  CHECK(hung.text == "MCP py/hang: tools/call timed out after 2 s");
  CHECK(hung.seconds < 10);

  Observation crashed = call_tool(reg, ctx, "py__crash", json::object());
  CHECK(crashed.is_error);
  CHECK(crashed.text.rfind("MCP py/crash: the server exited (exit code 3) during tools/call", 0) == 0);

  // The server is started again for the next call.
  ctx.timeout = std::chrono::seconds(30);
  CHECK(call_tool(reg, ctx, "py__add", {{"a", 1}, {"b", 1}}).text == "1 + 1 = 2");
}

TEST_CASE("MCP against the published mcp-server-time") {
  if (auto why = missing_python_mcp()) {
    MESSAGE("skipped: mcp-server-time cases: " << *why);
    return;
  }
  if (!fs::exists(venv_bin("mcp-server-time"))) {
    MESSAGE("skipped: mcp-server-time is not installed in the project venv (run scripts/python-env.sh mcp)");
    return;
  }
  fs::path config_file = fixtures_dir() / "tools" / "mcp_time.json";
  auto config = load_mcp_config(config_file);
  REQUIRE(config.ok());
  // The fixture names the program; run the venv's copy.
  (*config)[0].command = venv_bin("mcp-server-time").string();
  ToolRegistry reg;
  auto added = add_mcp_tools(reg, *config);
  REQUIRE_MESSAGE(added.ok(), (added.ok() ? "" : added.error().message));
  CHECK(tool_names(reg) == std::vector<std::string>{"time__get_current_time", "time__convert_time"});

  TempDir work;
  ToolContext ctx = context_in(work);
  ctx.timeout = std::chrono::seconds(30);
  // Both tools are annotated readOnlyHint, so they run in read-only mode.
  ctx.approval = ApprovalMode::read_only;

  Observation converted = call_tool(reg, ctx, "time__convert_time",
                                    {{"source_timezone", "UTC"}, {"time", "12:00"}, {"target_timezone", "Asia/Tokyo"}});
  REQUIRE_FALSE(converted.is_error);
  json c = json::parse(converted.text);
  CHECK(c["target"]["timezone"] == "Asia/Tokyo");
  CHECK(c["target"]["datetime"].get<std::string>().substr(10) == "T21:00:00+09:00");
  CHECK(c["time_difference"] == "+9.0h");

  std::time_t before = std::time(nullptr);
  Observation now = call_tool(reg, ctx, "time__get_current_time", {{"timezone", "UTC"}});
  REQUIRE_FALSE(now.is_error);
  json n = json::parse(now.text);
  CHECK(n["timezone"] == "UTC");
  char today[16];
  std::strftime(today, sizeof today, "%Y-%m-%d", std::gmtime(&before));
  CHECK(n["datetime"].get<std::string>().substr(0, 10) == today);

  Observation bad = call_tool(reg, ctx, "time__get_current_time", {{"timezone", "Not/AZone"}});
  CHECK(bad.is_error);
  CHECK(bad.text.find("Invalid timezone") != std::string::npos);
}
