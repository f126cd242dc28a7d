// The run/chat flags and the JSON config file: config values fill what the command line left out.
#include <doctest/doctest.h>

#include "cli/agent/backend.hpp"
#include "cli/agent/corpus_cache.hpp"
#include "cli/agent/options.hpp"
#include "tests/test_support.hpp"
#include "tools/coding_tools.hpp"

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

TEST_CASE("the backend is one choice: --model sets aside a config's server, --api a config's model") {
  TempDir dir("dsa-opt");
  write_text(dir / "api.json", R"({"api": "http://h:1", "api-model": "m", "api-key-env": "K"})");
  const std::string model = (dir / "m").string();
  std::filesystem::create_directory(model);
  cli::AgentOptions local;
  auto ok = parse(local, {"--config", (dir / "api.json").string(), "--model", model});
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  CHECK(local.model_dir == model);
  CHECK(local.api_url.empty());

  write_text(dir / "model.json", R"({"model": ")" + model + R"(", "api-model": "served"})");
  cli::AgentOptions remote;
  ok = parse(remote, {"--config", (dir / "model.json").string(), "--api", "http://h:2"});
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  CHECK(remote.api_url == "http://h:2");
  CHECK(remote.model_dir.empty());
  CHECK(remote.api_model == "served");
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
  SUBCASE("a number past a double") {
    write_text(dir / "c.json", R"({"temperature": 1e400})");
    auto ok = parse(o, {"--config", file});
    REQUIRE_FALSE(ok.ok());
    CHECK(ok.error().message.find(file + ": not valid JSON") != std::string::npos);
  }
  SUBCASE("bytes that are not UTF-8, escaped in the error") {
    write_text(dir / "c.json", "{\"api-model\": \"m\xff\"}");
    auto ok = parse(o, {"--config", file});
    REQUIRE_FALSE(ok.ok());
    CHECK(ok.error().message.find(file + ": not valid JSON") != std::string::npos);
    CHECK(ok.error().message.find("m\\xff") != std::string::npos);
    CHECK(ok.error().message.find('\xff') == std::string::npos);
  }
}

TEST_CASE("backend flags are checked") {
  cli::AgentOptions o;
  ::setenv("XDG_CONFIG_HOME", "/nonexistent-dsa-config", 1);
  ::setenv("DSAGENT_MODEL", "/nonexistent-dsa-model", 1);  // no default model either
  auto none = parse(o, {});
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message ==
        "no backend: give --model DIR or --api URL --api-model NAME (the default model /nonexistent-dsa-model was not "
        "found)");
  ::unsetenv("DSAGENT_MODEL");
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

TEST_CASE("the browse tools stand where \"browse\" stands in --tools, as a batch adds them") {
  // The order of the tool definitions is part of the prompt: `batch` must give the model the
  // prompt `run` gives it for the same flags.
  cli::AgentOptions o;
  o.tools = "calculator,browse,shell";
  ToolRegistry reg;
  int calls = 0;
  REQUIRE(cli::add_selected_tools(reg, o, [&](ToolRegistry& r) {
            ++calls;
            r.add(make_read_file_tool());  // stands in for search/open/find
          }).ok());
  std::vector<std::string> names;
  for (const auto& s : reg.specs()) names.push_back(s.name);
  CHECK(calls == 1);
  CHECK(names == std::vector<std::string>{"calculator", "read_file", "shell"});
}

namespace {

// A directory that passes for a model (the options only look for config.json), with `defaults` as
// its dsagent.json.
void fake_model_dir(const std::filesystem::path& dir, const std::string& defaults) {
  std::filesystem::create_directories(dir);
  write_text(dir / "config.json", "{}");
  write_text(dir / "dsagent.json", defaults);
}

}  // namespace

TEST_CASE("without --model or --api the default model is used, and its dsagent.json fills defaults") {
  TempDir dir("dsa-opt");
  ::setenv("XDG_CONFIG_HOME", (dir / "no-cfg").c_str(), 1);
  const auto model = dir / "model";
  fake_model_dir(model, R"({"tools": "calculator", "max-steps": 9, "thinking": "off", "corpus": "docs.jsonl",
                            "prompts_dir": "prompts", "tool-specs": ["tools/t.json", "/abs/u.json"],
                            "attention": "dense"})");
  ::setenv("DSAGENT_MODEL", model.c_str(), 1);

  SUBCASE("the model's values, its paths resolved against it") {
    cli::AgentOptions o;
    auto ok = parse(o, {});
    REQUIRE_MESSAGE(ok.ok(), ok.error().message);
    CHECK(o.model_dir == model.string());
    CHECK(o.tools == "calculator");
    CHECK(o.max_steps == 9);
    CHECK(o.thinking == "off");
    CHECK(o.corpus == (model / "docs.jsonl").string());
    CHECK(o.prompts_dir == (model / "prompts").string());
    CHECK(o.tool_specs == std::vector<std::string>{(model / "tools/t.json").string(), "/abs/u.json"});
    CHECK(cli::attention_mode(o) == AttentionMode::dense);
  }
  SUBCASE("the command line and the config file win over the model") {
    write_text(dir / "c.json", R"({"max-steps": 4, "tool-spec": ["mine.json"]})");
    cli::AgentOptions o;
    auto ok = parse(o, {"--config", (dir / "c.json").string(), "--tools", "none", "--attention", "sparse"});
    REQUIRE_MESSAGE(ok.ok(), ok.error().message);
    CHECK(o.tools == "none");
    CHECK(o.max_steps == 4);
    CHECK(o.tool_specs == std::vector<std::string>{"mine.json"});
    CHECK(o.thinking == "off");  // not given above: still the model's
    CHECK(cli::attention_mode(o) == AttentionMode::sparse);
  }
  SUBCASE("--api skips the default model and its defaults") {
    cli::AgentOptions o;
    auto ok = parse(o, {"--api", "http://h", "--api-model", "m"});
    REQUIRE(ok.ok());
    CHECK(o.model_dir.empty());
    CHECK(o.tools == "coding");
  }
  SUBCASE("an explicit --model's dsagent.json applies too") {
    const auto other = dir / "other";
    fake_model_dir(other, R"({"tools": "search"})");
    cli::AgentOptions o;
    REQUIRE(parse(o, {"--model", other.string()}).ok());
    CHECK(o.model_dir == other.string());
    CHECK(o.tools == "search");
  }
  SUBCASE("a model's dsagent.json cannot pick the backend, and its errors name it") {
    write_text(model / "dsagent.json", R"({"api": "http://h"})");
    cli::AgentOptions o;
    auto bad = parse(o, {});
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message == (model / "dsagent.json").string() + ": api: a model's dsagent.json cannot choose the backend");
  }
  SUBCASE("a model directory without config.json is not a default model") {
    std::filesystem::remove(model / "config.json");
    cli::AgentOptions o;
    auto none = parse(o, {});
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().message.find("the default model " + model.string() + " was not found") != std::string::npos);
  }
  ::unsetenv("DSAGENT_MODEL");
}

TEST_CASE("--tools calculator adds the calculator") {
  cli::AgentOptions o;
  o.tools = "calculator";
  ToolRegistry reg;
  REQUIRE(cli::add_selected_tools(reg, o).ok());
  REQUIRE(reg.specs().size() == 1);
  CHECK(reg.specs()[0].name == "calculator");
}

TEST_CASE("--corpus names a built index or a JSONL file, indexed once into a cache") {
  TempDir dir("dsa-opt");
  const auto jsonl = dir / "docs.jsonl";
  write_text(jsonl, R"({"docid": "d1", "title": "Lighthouses", "text": "The Pharos of Alexandria was a lighthouse."}
{"docid": "d2", "title": "Bridges", "text": "The Rialto bridge crosses the Grand Canal."}
)");
  auto cache = cli::corpus_cache_path(jsonl);
  REQUIRE(cache.ok());
  std::filesystem::remove(*cache);

  auto corpus = cli::open_corpus(jsonl);
  REQUIRE_MESSAGE(corpus.ok(), corpus.error().message);
  CHECK((*corpus)->size() == 2);
  CHECK((*corpus)->path() == *cache);
  auto hits = (*corpus)->search("Rialto canal", 5);
  REQUIRE(hits.ok());
  REQUIRE(!hits->empty());
  CHECK(hits->front().docid == "d2");

  // Opened again: the same index, not rebuilt.
  const auto built_at = std::filesystem::last_write_time(*cache);
  auto again = cli::open_corpus(jsonl);
  REQUIRE(again.ok());
  CHECK(std::filesystem::last_write_time(*cache) == built_at);

  // A changed file gets its own index.
  write_text(jsonl, R"({"docid": "d3", "title": "Towers", "text": "Pisa leans."})" "\n");
  auto changed = cli::corpus_cache_path(jsonl);
  REQUIRE(changed.ok());
  CHECK(*changed != *cache);
  auto fresh = cli::open_corpus(jsonl);
  REQUIRE(fresh.ok());
  CHECK((*fresh)->size() == 1);
  std::filesystem::remove(*cache);
  std::filesystem::remove(*changed);

  // The tools accept it through --corpus.
  cli::AgentOptions o;
  o.tools = "browse";
  o.corpus = jsonl.string();
  ToolRegistry reg;
  auto ok = cli::add_selected_tools(reg, o);
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  CHECK(reg.has("search"));
  std::filesystem::remove(*cli::corpus_cache_path(jsonl));

  auto missing = cli::open_corpus(dir / "nope.jsonl");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("nope.jsonl") != std::string::npos);
}
