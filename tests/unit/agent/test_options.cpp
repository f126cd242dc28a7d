// The run/chat flags and the JSON config file: config values fill what the command line left out.
#include <doctest/doctest.h>

#include "cli/agent/backend.hpp"
#include "cli/agent/options.hpp"
#include "tests/test_support.hpp"

using namespace dsa;
using namespace dsa::test;

namespace {

// Parses `args` (after the program name) into opts and applies the config file.
Result<void> parse(cli::AgentOptions& opts, std::vector<std::string> args) {
  CLI::App app;
  cli::add_agent_flags(app, opts);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  app.parse(reversed);
  return cli::finish_agent_options(app, opts);
}

}  // namespace

TEST_CASE("config file values apply where no flag was given; flags win") {
  TempDir dir("dsa-opt");
  write_text(dir / "c.json", R"({"api": "http://h:1", "api_model": "from-file", "context-strategy": "summary",
                                 "max-steps": 7, "json": true, "tool-spec": ["a.json", "b.json"],
                                 "mcpServers": {"t": {"command": "true"}}})");
  cli::AgentOptions o;
  auto ok = parse(o, {"--config", (dir / "c.json").string(), "--api-model", "from-flag", "--max-steps", "3"});
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  CHECK(o.api_url == "http://h:1");
  CHECK(o.api_model == "from-flag");
  CHECK(o.context_strategy == "summary");
  CHECK(o.max_steps == 3);
  CHECK(o.json_events);
  CHECK(o.tool_specs == std::vector<std::string>{"a.json", "b.json"});
  CHECK(o.mcp_servers["t"]["command"] == "true");
}

TEST_CASE("config errors name the file and the key") {
  TempDir dir("dsa-opt");
  const std::string file = (dir / "c.json").string();
  cli::AgentOptions o;
  SUBCASE("unknown key") {
    write_text(dir / "c.json", R"({"api": "http://h", "api-model": "m", "frobnicate": 1})");
    auto ok = parse(o, {"--config", file});
    REQUIRE_FALSE(ok.ok());
    CHECK(ok.error().message.find(file) != std::string::npos);
    CHECK(ok.error().message.find("frobnicate") != std::string::npos);
  }
  SUBCASE("value outside the allowed set") {
    write_text(dir / "c.json", R"({"api": "http://h", "api-model": "m", "approval": "sometimes"})");
    auto ok = parse(o, {"--config", file});
    REQUIRE_FALSE(ok.ok());
    CHECK(ok.error().message.find("approval") != std::string::npos);
  }
  SUBCASE("not JSON") {
    write_text(dir / "c.json", "{api");
    auto ok = parse(o, {"--config", file});
    REQUIRE_FALSE(ok.ok());
    CHECK(ok.error().message.find("not valid JSON") != std::string::npos);
  }
}

TEST_CASE("backend flags are checked") {
  cli::AgentOptions o;
  ::setenv("XDG_CONFIG_HOME", "/nonexistent-dsa-config", 1);
  CHECK_FALSE(parse(o, {}).ok());
  cli::AgentOptions o2;
  CHECK_FALSE(parse(o2, {"--api", "http://h"}).ok());
  cli::AgentOptions o3;
  CHECK_FALSE(parse(o3, {"--api", "http://h", "--api-model", "m", "--model", "dir"}).ok());
}

TEST_CASE("--tools selects tool groups by name") {
  cli::AgentOptions o;
  o.tools = "files,shell";
  ToolRegistry reg;
  REQUIRE(cli::add_selected_tools(reg, o).ok());
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"read_file", "write_file", "edit_file", "shell"});

  o.tools = "files,browsing";
  ToolRegistry reg2;
  auto bad = cli::add_selected_tools(reg2, o);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("browsing") != std::string::npos);
}
