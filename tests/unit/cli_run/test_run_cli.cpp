// `dsagent run` end to end: the binary against a loopback OpenAI-compatible server that scripts a
// write_file tool call and then an answer.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "cli/agent/corpus_cache.hpp"
#include "engine/api/types.hpp"
#include "tests/http_test_server.hpp"
#include "tests/test_support.hpp"

using namespace dsa;
using namespace dsa::test;

namespace {

std::string event(const json& delta, const char* finish = nullptr) {
  json choice{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}};
  if (finish) choice["finish_reason"] = finish;
  json chunk{{"id", "c1"}, {"object", "chat.completion.chunk"}, {"model", "m"}, {"choices", json::array({choice})}};
  return "data: " + chunk.dump() + "\n\n";
}

const std::string kDone = "data: [DONE]\n\n";

// A turn with reasoning and one write_file call (arguments streamed in two pieces).
HttpTestServer::Response write_file_turn(const std::string& path, const std::string& content) {
  const std::string args = json{{"path", path}, {"content", content}}.dump();
  const size_t half = args.size() / 2;
  return HttpTestServer::sse({
      event({{"role", "assistant"}, {"reasoning_content", "I will write the file."}}),
      event({{"tool_calls", json::array({{{"index", 0}, {"id", "call_srv_1"}, {"type", "function"},
                                          {"function", {{"name", "write_file"}, {"arguments", args.substr(0, half)}}}}})}}),
      event({{"tool_calls", json::array({{{"index", 0}, {"function", {{"arguments", args.substr(half)}}}}})}}),
      event(json::object(), "tool_calls"),
      kDone,
  });
}

HttpTestServer::Response answer_turn(const std::string& text) {
  return HttpTestServer::sse({event({{"role", "assistant"}, {"content", text}}), event(json::object(), "stop"), kDone});
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

// dsagent run with a clean environment: no user config, no API key variables, and the default
// model only when `default_model` names one.
std::string run_cmd(const TempDir& dir, const std::string& args, const std::string& default_model = "") {
  return "cd " + quote(dir.path().string()) + " && env -u DEEPSEEK_API_KEY -u OPENAI_API_KEY -u DSAGENT_MODEL " +
         (default_model.empty() ? "" : "DSAGENT_MODEL=" + quote(default_model) + " ") + "XDG_CONFIG_HOME=" +
         quote((dir / "cfg").string()) + " " + quote(dsagent_binary().string()) + " run " + args;
}

// A turn that calls one tool by name with JSON arguments.
HttpTestServer::Response tool_turn(const std::string& name, const json& args) {
  return HttpTestServer::sse({
      event({{"role", "assistant"},
             {"tool_calls", json::array({{{"index", 0}, {"id", "call_1"}, {"type", "function"},
                                          {"function", {{"name", name}, {"arguments", args.dump()}}}}})}}),
      event(json::object(), "tool_calls"),
      kDone,
  });
}

}  // namespace

TEST_CASE("dsagent run: the tool really runs, the trajectory records it, the answer is printed") {
  TempDir dir("dsa-run");
  std::filesystem::create_directories(dir / "work");
  HttpTestServer server({write_file_turn("hello.txt", "hi there\n"), answer_turn("Created hello.txt.")});
  const auto traj = dir / "traj.json";
  auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m --workdir work --trajectory " +
                                        quote(traj.string()) + " 'Create hello.txt' 2>" + quote((dir / "err").string())));
  INFO(read_text(dir / "err"));
  CHECK(r.exit_code == 0);
  CHECK(r.output == "Created hello.txt.\n");
  CHECK(read_text(dir / "work" / "hello.txt") == "hi there\n");

  // The second request carries the call (renumbered id, reasoning kept) and its result.
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  json body = json::parse(reqs[1].body);
  const auto& msgs = body["messages"];
  REQUIRE(msgs.size() == 4);
  CHECK(msgs[2]["role"] == "assistant");
  CHECK(msgs[2]["reasoning_content"] == "I will write the file.");
  CHECK(msgs[2]["tool_calls"][0]["function"]["name"] == "write_file");
  CHECK(msgs[3]["role"] == "tool");
  CHECK(msgs[3]["tool_call_id"] == msgs[2]["tool_calls"][0]["id"]);

  json doc = json::parse(read_text(traj));
  const auto& steps = doc["steps"];
  REQUIRE(steps.size() == 4);
  CHECK(steps[2]["tool_calls"][0]["function_name"] == "write_file");
  CHECK(steps[2]["tool_calls"][0]["arguments"]["path"] == "hello.txt");
  CHECK(steps[2]["observation"]["results"].size() == 1);
  CHECK(steps[3]["message"] == "Created hello.txt.");
  CHECK(doc["extra"]["final_state"]["status"] == "answered");
}

TEST_CASE("dsagent run --json: one JSON event per line, ending with the final state") {
  TempDir dir("dsa-run");
  HttpTestServer server({write_file_turn("a.txt", "A"), answer_turn("ok")});
  auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m --json 'write a.txt' 2>/dev/null"));
  CHECK(r.exit_code == 0);
  std::istringstream lines(r.output);
  std::vector<json> events;
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    REQUIRE_NOTHROW(events.push_back(json::parse(line)));
  }
  REQUIRE(events.size() >= 4);
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e["type"]);
  CHECK(std::count(types.begin(), types.end(), "tool_call") == 1);
  CHECK(std::count(types.begin(), types.end(), "tool_result") == 1);
  CHECK(std::count(types.begin(), types.end(), "step") == 2);
  const json& last = events.back();
  CHECK(last["type"] == "final");
  CHECK(last["status"] == "answered");
  CHECK(last["answer"] == "ok");
  CHECK(last["steps"] == 2);
  CHECK(last["usage"].contains("prompt_tokens"));
  CHECK(read_text(dir / "a.txt") == "A");
}

TEST_CASE("dsagent run: exit codes name the final state") {
  TempDir dir("dsa-run");
  SUBCASE("max_steps is 3") {
    HttpTestServer server({write_file_turn("a.txt", "A")});
    auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m --max-steps 1 --json go 2>/dev/null"));
    CHECK(r.exit_code == 3);
    CHECK(r.output.find("\"status\":\"max_steps\"") != std::string::npos);
  }
  SUBCASE("a server error is 1") {
    HttpTestServer server({HttpTestServer::json_body(401, R"({"error":{"message":"bad key"}})")});
    auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m go 2>&1"));
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("bad key") != std::string::npos);
  }
  SUBCASE("--model with no model there is one clear line") {
    auto r = run_command(run_cmd(dir, "--model /nonexistent go 2>&1"));
    CHECK(r.exit_code == 1);
    CHECK(r.output.find("/nonexistent") != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  }
}

TEST_CASE("dsagent run --model: the local engine drives the loop") {
  // A random-weight model writes noise, so the run ends on the step limit or answers; either way
  // the prompt went through the local encoder and engine and usage counts real tokens.
  TempDir dir("dsa-run-local");
  const std::string model = (dir / "m").string();
  REQUIRE(run_command(quote(dsagent_binary().string()) + " make-model " + quote(model) + " --preset tiny --seed 5")
              .exit_code == 0);
  auto r = run_command(run_cmd(dir, "--model " + quote(model) +
                                        " --tools none --max-steps 1 --max-tokens 8 --temperature 0 --json go 2>/dev/null"));
  CHECK((r.exit_code == 0 || r.exit_code == 3));
  REQUIRE(!r.output.empty());
  std::string last = r.output.substr(0, r.output.size() - 1);
  last = last.substr(last.rfind('\n') + 1);
  auto final_event = json::parse(last);
  CHECK(final_event["type"] == "final");
  CHECK(final_event["steps"] == 1);
  CHECK(final_event["usage"]["prompt_tokens"].get<int64_t>() > 10);
  CHECK(final_event["usage"]["completion_tokens"].get<int64_t>() > 0);
}

TEST_CASE("dsagent run --config: flags from a JSON file, the command line wins") {
  TempDir dir("dsa-run");
  HttpTestServer server({answer_turn("from config")});
  write_text(dir / "c.json", json{{"api", server.url()}, {"api-model", "wrong"}, {"max_steps", 5}}.dump());
  auto r = run_command(run_cmd(dir, "--config c.json --api-model right hi 2>/dev/null"));
  CHECK(r.exit_code == 0);
  CHECK(r.output == "from config\n");
  REQUIRE(server.requests().size() == 1);
  CHECK(json::parse(server.requests()[0].body)["model"] == "right");

  write_text(dir / "bad.json", R"({"api": "http://x", "no_such_flag": 1})");
  auto bad = run_command(run_cmd(dir, "--config bad.json hi 2>&1"));
  CHECK(bad.exit_code == 1);
  CHECK(bad.output.find("no_such_flag") != std::string::npos);
}

TEST_CASE("dsagent run: a retried server error is reported as a retry event and the run goes on") {
  TempDir dir("dsa-run");
  HttpTestServer server({HttpTestServer::Response{.status = 503, .headers = {{"Retry-After", "0"}}, .chunks = {{"busy"}}},
                         answer_turn("after retry")});
  auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m --json hi 2>/dev/null"));
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("\"type\":\"retry\"") != std::string::npos);
  CHECK(r.output.find("503") != std::string::npos);
  CHECK(r.output.find("\"answer\":\"after retry\"") != std::string::npos);
}

TEST_CASE("dsagent run without --model or --api: the default model and its dsagent.json") {
  TempDir dir("dsa-run-default");
  const std::string model = (dir / "m").string();
  REQUIRE(run_command(quote(dsagent_binary().string()) + " make-model " + quote(model) + " --preset tiny --seed 5")
              .exit_code == 0);
  write_text(dir / "m" / "dsagent.json", R"({"tools": "calculator", "max-steps": 1, "max-tokens": 8})");
  // The tools offered are listed in the system prompt, the trajectory's first step.
  auto offered = [&](const std::string& args) {
    const auto traj = dir / "traj.json";
    std::filesystem::remove(traj);
    auto r = run_command(run_cmd(dir, args + " --trajectory " + quote(traj.string()) + " --json go 2>" +
                                          quote((dir / "err").string()),
                                 model));
    INFO(read_text(dir / "err"));
    CHECK((r.exit_code == 0 || r.exit_code == 3));
    json doc = json::parse(read_text(traj));
    CHECK(doc["steps"].size() >= 2);
    CHECK(doc["steps"].size() <= 3);  // the model's dsagent.json: one step at most
    return doc["steps"][0]["message"].get<std::string>();
  };
  const std::string from_model = offered("");
  CHECK(from_model.find("- calculator: Evaluates an arithmetic expression and returns its value.") != std::string::npos);
  CHECK(from_model.find("- shell") == std::string::npos);
  const std::string from_flag = offered("--tools none");
  CHECK(from_flag.find("calculator") == std::string::npos);
  CHECK(from_flag.find("(none)") != std::string::npos);

  auto missing = run_command(run_cmd(dir, "go 2>&1", (dir / "no-model").string()));
  CHECK(missing.exit_code == 1);
  CHECK(missing.output == "dsagent run: no backend: give --model DIR or --api URL --api-model NAME (the default model " +
                              (dir / "no-model").string() + " was not found)\n");
}

TEST_CASE("dsagent run --corpus docs.jsonl: the browse tools search a JSONL corpus indexed on the fly") {
  TempDir dir("dsa-run");
  write_text(dir / "docs.jsonl",
             R"({"docid": "d1", "url": "https://example.org/pharos", "title": "Pharos", "text": "The Pharos of Alexandria was a lighthouse."})"
             "\n"
             R"({"docid": "d2", "url": "https://example.org/rialto", "title": "Rialto", "text": "The Rialto bridge crosses the Grand Canal."})"
             "\n");
  HttpTestServer server({tool_turn("search", {{"query", "Rialto bridge"}}), answer_turn("Venice")});
  auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m --tools browse --corpus docs.jsonl hi 2>" +
                                        quote((dir / "err").string())));
  INFO(read_text(dir / "err"));
  CHECK(r.exit_code == 0);
  CHECK(r.output == "Venice\n");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  const json msgs = json::parse(reqs[1].body)["messages"];
  const json& result = msgs.back();
  CHECK(result["role"] == "tool");
  CHECK(result["content"].get<std::string>().find("Rialto") != std::string::npos);
  CHECK(result["content"].get<std::string>().find("Pharos") == std::string::npos);
  std::filesystem::remove(*cli::corpus_cache_path(dir / "docs.jsonl"));
}

namespace {

// The tool message of the second request: what the model was shown for its first call.
std::string first_observation(const HttpTestServer& server) {
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  json msgs = json::parse(reqs[1].body)["messages"];
  REQUIRE(msgs.size() == 4);
  return msgs[3]["content"].get<std::string>();
}

// The names of the tools the first request offered.
std::vector<std::string> offered_tools(const HttpTestServer& server) {
  const json body = json::parse(server.requests().at(0).body);
  std::vector<std::string> names;
  for (const auto& t : body["tools"]) names.push_back(t["function"]["name"]);
  return names;
}

bool offers(const HttpTestServer& server, const std::string& name) {
  auto names = offered_tools(server);
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

TEST_CASE("dsagent run --tool-spec: a command plugin is offered and really runs") {
  TempDir dir("dsa-run-plugin");
  std::filesystem::create_directories(dir / "work");
  write_text(dir / "shout.sh", "#!/bin/bash\ntr a-z A-Z\n");
  std::filesystem::permissions(dir / "shout.sh", std::filesystem::perms::owner_all);
  write_text(dir / "shout.json", json{{"name", "shout"},
                                      {"description", "upper-cases its input"},
                                      {"parameters", {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}}},
                                      {"command", (dir / "shout.sh").string()}}
                                     .dump());
  HttpTestServer server({tool_turn("shout", {{"text", "quiet words"}}), answer_turn("done")});
  auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m --workdir work --tools none --tool-spec " +
                                        quote((dir / "shout.json").string()) + " 'Shout' 2>" + quote((dir / "err").string())));
  INFO(read_text(dir / "err"));
  CHECK(r.exit_code == 0);
  CHECK(offered_tools(server) == std::vector<std::string>{"shout"});
  CHECK(first_observation(server).find("\"TEXT\":\"QUIET WORDS\"") != std::string::npos);
}

TEST_CASE("dsagent run --mcp-config: an MCP server's tools are offered and called") {
  const auto python = source_dir() / ".venv" / "bin" / "python";
  if (!std::filesystem::exists(python) || run_command(python.string() + " -c 'import mcp' 2>&1").exit_code != 0) {
    MESSAGE("skipped: the project venv has no mcp package (run scripts/python-env.sh mcp)");
    return;
  }
  TempDir dir("dsa-run-mcp");
  std::filesystem::create_directories(dir / "work");
  write_text(dir / "mcp.json",
             json{{"mcpServers",
                   {{"py", {{"command", python.string()}, {"args", {(source_dir() / "tests/golden/mcp_test_server.py").string()}}}}}}}
                 .dump());
  HttpTestServer server({tool_turn("py__add", {{"a", 2}, {"b", 40}}), answer_turn("42")});
  auto r = run_command(run_cmd(dir, "--api " + server.url() + " --api-model m --workdir work --tools none --mcp-config " +
                                        quote((dir / "mcp.json").string()) + " 'Add' 2>" + quote((dir / "err").string())));
  INFO(read_text(dir / "err"));
  CHECK(r.exit_code == 0);
  CHECK(r.output == "42\n");
  CHECK(offers(server, "py__add"));
  CHECK(first_observation(server) == "2 + 40 = 42");
}

TEST_CASE("dsagent run --mcp-config: a server that fails at start is one warning line and the run goes on") {
  TempDir dir("dsa-run-mcp-crash");
  std::filesystem::create_directories(dir / "work");
  const std::string crash =
      R"(printf 'Traceback (most recent call last):\n  File "s.py"\nImportError: no module named foo\n' >&2; exit 1)";
  write_text(dir / "mcp.json", json{{"mcpServers", {{"py", {{"command", "bash"}, {"args", {"-c", crash}}}}}}}.dump());
  HttpTestServer server({answer_turn("done")});
  const std::string mcp = " --tools none --mcp-config " + quote((dir / "mcp.json").string()) + " 'Go'";
  auto r = run_command(run_cmd(
      dir, "--api " + server.url() + " --api-model m --workdir work" + mcp + " 2>" + quote((dir / "err").string())));
  const std::string err = read_text(dir / "err");
  INFO(err);
  CHECK(r.exit_code == 0);
  CHECK(r.output == "done\n");
  CHECK(
      err.starts_with("warning: MCP server 'py' skipped: the server exited (exit code 1) during initialize; its "
                      "stderr ends with: ImportError: no module named foo\n"));

  // With --json the warning is an event before the others.
  HttpTestServer server2({answer_turn("done")});
  auto j = run_command(
      run_cmd(dir, "--api " + server2.url() + " --api-model m --workdir work --json" + mcp + " 2>/dev/null"));
  CHECK(j.exit_code == 0);
  const json first = json::parse(j.output.substr(0, j.output.find('\n')));
  CHECK(first["type"] == "warning");
  CHECK(first["message"].get<std::string>().starts_with("MCP server 'py' skipped: the server exited (exit code 1)"));
}

TEST_CASE("dsagent run --approval: ask without a terminal and read-only refuse writes; the model is told") {
  for (const char* mode : {"ask", "read-only"}) {
    CAPTURE(mode);
    TempDir dir("dsa-run-approval");
    std::filesystem::create_directories(dir / "work");
    HttpTestServer server({write_file_turn("x.txt", "no\n"), answer_turn("ok")});
    // setsid: no controlling terminal, so ask mode has nobody to ask.
    std::string cmd = run_cmd(dir, "--api " + server.url() + " --api-model m --workdir work --approval " + mode +
                                       " 'Write x.txt' 2>/dev/null </dev/null");
    cmd.replace(cmd.find("&& env "), 7, "&& setsid env ");
    auto r = run_command(cmd);
    CHECK(r.exit_code == 0);
    CHECK_FALSE(std::filesystem::exists(dir / "work" / "x.txt"));
    CHECK(first_observation(server).find("refused") != std::string::npos);
  }
}

TEST_CASE("dsagent run --json: a run that cannot start still ends its event stream with a final event") {
  TempDir dir("dsa-run-setup");
  auto r = run_command(run_cmd(dir, "--api http://127.0.0.1:9/v1 --api-model m --tools browse --corpus " +
                                        (dir / "missing.db").string() + " --json hi 2>/dev/null"));
  CHECK(r.exit_code == 1);
  const auto event = json::parse(r.output);
  CHECK(event["type"] == "final");
  CHECK(event["status"] == "error");
  CHECK(event["error"].get<std::string>().find("missing.db") != std::string::npos);
}

TEST_CASE("dsagent run --api-idle-timeout and --api-retries: a silent server is given up on as told") {
  TempDir dir("dsa-run-idle");
  // Headers, then nothing for 10 s: with a 1 s idle timeout and one retry, two attempts and an error.
  const HttpTestServer::Response silent{.status = 200,
                                        .headers = {{"Content-Type", "text/event-stream"}},
                                        .chunks = {{": waiting\n\n"}, {"data: [DONE]\n\n", 10000}}};
  HttpTestServer server({silent, silent});
  const auto start = std::chrono::steady_clock::now();
  auto r = run_command(run_cmd(
      dir, "--api " + server.url() + " --api-model m --api-idle-timeout 1 --api-retries 1 --json hi 2>/dev/null"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("gave up after 2 attempts") != std::string::npos);
  CHECK(seconds < 9);
}

TEST_CASE(
    "dsagent run: out-of-range sampling and context flags, a missing work dir, no sandbox: one line before any step") {
  TempDir dir("dsa-run-flags");
  const std::string api = "--api http://127.0.0.1:9/v1 --api-model m ";
  const std::pair<std::string, std::string> cases[] = {
      {"--temperature nan", "--temperature: Value nan not in range 0 to 100"},
      {"--top-p 7", "--top-p: Value 7 not in range 0 to 1"},
      {"--context-window -5", "--context-window: Value -5 not in range"},
      {"--workdir " + (dir / "missing").string(), "--workdir " + (dir / "missing").string() + ": does not exist"},
  };
  for (const auto& [flags, message] : cases) {
    CAPTURE(flags);
    auto r = run_command(run_cmd(dir, api + flags + " hi 2>&1"));
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.output.find(message) != std::string::npos, r.output);
    CHECK(r.output.find("step 1") == std::string::npos);
  }
  // --sandbox where bubblewrap cannot be found is a set-up error, not a run whose every command fails.
  auto r = run_command("cd '" + dir.path().string() + "' && env PATH=/nonexistent '" + dsagent_binary().string() +
                       "' run " + api + "--sandbox hi 2>&1");
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.output.find("dsagent run: --sandbox: ") != std::string::npos, r.output);
}
