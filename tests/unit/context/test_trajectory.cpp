// The ATIF trajectory writer: a valid file after every step, the expected content, redaction.
#include <doctest/doctest.h>

#include "context/trajectory.hpp"
#include "tests/test_support.hpp"

using namespace dsa;

namespace {

json read_json(const std::filesystem::path& p) {
  json j = json::parse(test::read_text(p), nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(!j.is_discarded(), "not valid JSON: " << p.string());
  return j;
}

}  // namespace

TEST_CASE("the file is valid ATIF after every step") {
  test::TempDir dir("traj");
  const auto path = dir / "t.json";
  auto w = TrajectoryWriter::create(path, TrajectoryInfo{"sess-1", "0.1.0", "deepseek-v3.2", {}});
  REQUIRE(w.ok());
  json j = read_json(path);
  CHECK(j["schema_version"] == "ATIF-v1.4");
  CHECK(j["session_id"] == "sess-1");
  CHECK(j["agent"] == json{{"name", "dsagent"}, {"version", "0.1.0"}, {"model_name", "deepseek-v3.2"}});
  CHECK(j["steps"].empty());

  REQUIRE(w->add_system("be helpful").ok());
  CHECK(read_json(path)["steps"].size() == 1);
  auto user_id = w->add_user("list files");
  REQUIRE(user_id.ok());
  CHECK(*user_id == 2);
  CHECK(read_json(path)["steps"].size() == 2);

  AssistantTurn turn;
  turn.reasoning = "I should run ls";
  turn.content = "";
  turn.tool_calls = {ToolCall{"call_1", "shell", R"({"cmd":"ls -l"})"}, ToolCall{"call_2", "read_file", "not json"}};
  turn.usage = Usage{.prompt_tokens = 120, .completion_tokens = 30, .cached_tokens = 100};
  auto agent_id = w->add_agent(turn);
  REQUIRE(agent_id.ok());
  CHECK(*agent_id == 3);
  j = read_json(path);
  REQUIRE(j["steps"].size() == 3);
  const json& step = j["steps"][2];
  CHECK(step["step_id"] == 3);
  CHECK(step["source"] == "agent");
  CHECK(step["model_name"] == "deepseek-v3.2");
  CHECK(step["reasoning_content"] == "I should run ls");
  CHECK(step["tool_calls"][0] ==
        json{{"tool_call_id", "call_1"}, {"function_name", "shell"}, {"arguments", {{"cmd", "ls -l"}}}});
  CHECK(step["tool_calls"][1]["arguments"] == "not json");  // kept as produced
  CHECK(step["metrics"] == json{{"prompt_tokens", 120}, {"completion_tokens", 30}, {"cached_tokens", 100}});
  CHECK_FALSE(step.contains("observation"));
  const std::string ts = step["timestamp"].get<std::string>();
  CHECK(ts.size() == 24);  // 2026-01-02T03:04:05.678Z
  CHECK(ts.back() == 'Z');

  REQUIRE(w->add_observation({{"call_1", "a.txt\nb.txt"}, {"call_2", "error: bad arguments"}}).ok());
  j = read_json(path);
  CHECK(j["steps"][2]["observation"] == json{{"results",
                                              {{{"source_call_id", "call_1"}, {"content", "a.txt\nb.txt"}},
                                               {{"source_call_id", "call_2"}, {"content", "error: bad arguments"}}}}});

  AssistantTurn answer;
  answer.content = "two files";
  answer.usage = Usage{.prompt_tokens = 200, .completion_tokens = 5, .cached_tokens = 150};
  REQUIRE(w->add_agent(answer).ok());
  j = read_json(path);
  CHECK(j["final_metrics"] == json{{"total_prompt_tokens", 320},
                                   {"total_completion_tokens", 35},
                                   {"total_cached_tokens", 250},
                                   {"total_steps", 4}});
  CHECK_FALSE(j["steps"][3].contains("tool_calls"));
  CHECK_FALSE(j["steps"][3].contains("reasoning_content"));

  REQUIRE(w->finish("answered", "", json{{"steps", 4}}).ok());
  j = read_json(path);
  CHECK(j["extra"]["final_state"] == json{{"status", "answered"}, {"steps", 4}});
  CHECK_FALSE(std::filesystem::exists(dir / "t.json.tmp"));
}

TEST_CASE("context-management records go to extra with the step they followed") {
  test::TempDir dir("traj");
  auto w = TrajectoryWriter::create(dir / "t.json", TrajectoryInfo{"s", "v", "m", {}});
  REQUIRE(w.ok());
  REQUIRE(w->add_user("task").ok());
  ContextRecord r;
  r.requested = Strategy::summary;
  r.applied = Strategy::discard_all;
  r.tokens_before = 900;
  r.tokens_after = 30;
  r.rounds_dropped = 8;
  r.reset_index = 1;
  r.fallback_reason = "summary call failed: HTTP 500";
  REQUIRE(w->add_context_record(r).ok());
  REQUIRE(w->finish("context_exhausted", "prompt of 140000 tokens exceeds the window").ok());
  const json j = read_json(dir / "t.json");
  const json& rec = j["extra"]["context_management"][0];
  CHECK(rec["after_step"] == 1);
  CHECK(rec["strategy"] == "discard-all");
  CHECK(rec["requested_strategy"] == "summary");
  CHECK(rec["tokens_before"] == 900);
  CHECK(rec["tokens_after"] == 30);
  CHECK(rec["rounds_dropped"] == 8);
  CHECK(rec["reset_index"] == 1);
  CHECK(rec["trigger"] == "budget");
  CHECK(rec["fallback_reason"] == "summary call failed: HTTP 500");
  CHECK(j["extra"]["final_state"]["status"] == "context_exhausted");
  CHECK(j["extra"]["final_state"]["error"] == "prompt of 140000 tokens exceeds the window");
}

TEST_CASE("secrets never reach the file") {
  const std::string key = "sk-SECRET123";
  test::TempDir dir("traj");
  auto w = TrajectoryWriter::create(dir / "t.json", TrajectoryInfo{"s", "v", "m", {key, ""}});
  REQUIRE(w.ok());
  REQUIRE(w->add_user("use key " + key).ok());
  AssistantTurn turn;
  turn.reasoning = "the key is " + key;
  turn.tool_calls = {ToolCall{"c1", "shell", R"({"cmd":"curl -H 'Authorization: Bearer sk-SECRET123'"})"}};
  REQUIRE(w->add_agent(turn).ok());
  REQUIRE(w->add_observation({{"c1", "echo sk-SECRET123sk-SECRET123"}}).ok());
  REQUIRE(w->finish("error", "auth failed for " + key).ok());
  const std::string text = test::read_text(dir / "t.json");
  CHECK(text.find("SECRET123") == std::string::npos);
  const json j = json::parse(text);
  CHECK(j["steps"][0]["message"] == "use key [redacted]");
  CHECK(j["steps"][1]["tool_calls"][0]["arguments"]["cmd"] == "curl -H 'Authorization: Bearer [redacted]'");
  CHECK(j["steps"][1]["observation"]["results"][0]["content"] == "echo [redacted][redacted]");
  CHECK(j["extra"]["final_state"]["error"] == "auth failed for [redacted]");
}

TEST_CASE("invalid UTF-8 in model text is written replaced, not lost") {
  test::TempDir dir("traj");
  auto w = TrajectoryWriter::create(dir / "t.json", TrajectoryInfo{"s", "v", "m", {}});
  REQUIRE(w.ok());
  REQUIRE(w->add_user("q").ok());
  AssistantTurn turn;
  turn.content = std::string("cut \xEF\xBD.") + " end";  // a lead byte pair, then '.'
  REQUIRE(w->add_agent(turn).ok());
  REQUIRE(w->add_step_extra("format_error", "malformed reply").ok());
  const json j = json::parse(test::read_text(dir / "t.json"));
  CHECK(j["steps"][1]["message"] == "cut \xEF\xBF\xBD. end");
}

TEST_CASE("an observation without an agent step, or an unwritable path, is an error") {
  test::TempDir dir("traj");
  auto w = TrajectoryWriter::create(dir / "t.json", TrajectoryInfo{"s", "v", "m", {}});
  REQUIRE(w.ok());
  CHECK_FALSE(w->add_observation({{"c1", "x"}}).ok());
  auto bad = TrajectoryWriter::create(dir / "no" / "such" / "t.json", TrajectoryInfo{"s", "v", "m", {}});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("t.json") != std::string::npos);
}
