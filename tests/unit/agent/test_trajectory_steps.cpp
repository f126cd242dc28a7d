// The loop writes the trajectory after every step: a model call sees the file as it was left by
// the step before, and the final state lands at the end.
#include <doctest/doctest.h>

#include "context/trajectory.hpp"
#include "tests/unit/agent/agent_rig.hpp"

using namespace dsa;
using namespace dsa::test;

TEST_CASE("the trajectory is on disk after each step, with tool calls, observations and the final state") {
  Rig rig;
  const auto path = rig.dir / "traj.json";
  auto writer = TrajectoryWriter::create(path, TrajectoryInfo{.session_id = "s1", .model_name = "scripted"});
  REQUIRE(writer.ok());
  std::vector<size_t> steps_seen;
  std::vector<bool> last_has_observation;
  ScriptedLlm llm([&](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    json doc = json::parse(read_text(path));
    steps_seen.push_back(doc["steps"].size());
    last_has_observation.push_back(doc["steps"].back().contains("observation"));
    if (n < 2) return ScriptedLlm::calls({call("shell", {{"command", "echo step" + std::to_string(n)}})});
    return ScriptedLlm::answer("finished");
  });
  auto loop = rig.make(llm);
  loop->set_trajectory(&*writer);
  auto r = loop->submit("three steps");
  REQUIRE(r.status == cli::FinalStatus::answered);

  // system + user before the first call; then one agent step (with its observation) per call.
  CHECK(steps_seen == std::vector<size_t>{2, 3, 4});
  CHECK(last_has_observation == std::vector<bool>{false, true, true});

  json doc = json::parse(read_text(path));
  const auto& steps = doc["steps"];
  REQUIRE(steps.size() == 5);
  CHECK(steps[0]["source"] == "system");
  CHECK(steps[1]["source"] == "user");
  CHECK(steps[1]["message"] == "three steps");
  CHECK(steps[2]["source"] == "agent");
  CHECK(steps[2]["tool_calls"][0]["function_name"] == "shell");
  CHECK(steps[2]["tool_calls"][0]["arguments"]["command"] == "echo step0");
  const std::string id0 = steps[2]["tool_calls"][0]["tool_call_id"];
  CHECK(steps[2]["observation"]["results"][0]["source_call_id"] == id0);
  CHECK(steps[2]["observation"]["results"][0]["content"].get<std::string>().find("step0") != std::string::npos);
  CHECK(steps[3]["tool_calls"][0]["tool_call_id"] != id0);
  CHECK(steps[4]["message"] == "finished");
  CHECK(doc["extra"]["final_state"]["status"] == "answered");
}

TEST_CASE("context resets are recorded in the trajectory") {
  Rig rig;
  const auto path = rig.dir / "traj.json";
  auto writer = TrajectoryWriter::create(path, TrajectoryInfo{.session_id = "s2", .model_name = "scripted"});
  REQUIRE(writer.ok());
  rig.policy.strategy = Strategy::discard_all;
  rig.policy.window = rig.base_tokens("fill") + 400;
  rig.policy.max_resets = 1;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    return ScriptedLlm::calls(
        {call("write_file", {{"path", "f" + std::to_string(n)}, {"content", std::string(2000, 'b')}})});
  });
  auto loop = rig.make(llm);
  loop->set_trajectory(&*writer);
  auto r = loop->submit("fill");
  CHECK(r.status == cli::FinalStatus::max_resets);
  json doc = json::parse(read_text(path));
  REQUIRE(doc["extra"]["context_management"].size() == 1);
  const auto& rec = doc["extra"]["context_management"][0];
  CHECK(rec["rounds_dropped"] == 1);
  CHECK(rec["tokens_after"].get<int64_t>() < rec["tokens_before"].get<int64_t>());
  CHECK(doc["extra"]["final_state"]["status"] == "max_resets");
}
