// ScriptedLlm, the deterministic model that agent-loop tests run against.
#include <doctest/doctest.h>

#include "tests/scripted_llm.hpp"
#include "tests/unit/remote/remote_test_util.hpp"

using namespace dsa;
using namespace dsa::test;

TEST_CASE("ScriptedLlm replays its turns in order, streams them and records each request") {
  ScriptedLlm llm({ScriptedLlm::calls({{"", "shell", R"({"cmd":"ls"})"}, {"my_id", "read", R"({"path":"a"})"}},
                                      "plan", "Looking."),
                   ScriptedLlm::answer("Two files.")});
  std::vector<Message> conversation{Message{.role = Role::user, .content = "what is here?"}};
  std::vector<ToolSpec> tools{{"shell", "Run a command", json::object()}};
  RecordingSink sink;
  auto first = llm.generate(conversation, tools, GenOptions{.thinking = true, .temperature = 0.5}, &sink);
  REQUIRE(first.ok());
  CHECK(first->finish == FinishReason::tool_calls);
  CHECK(sink.events == std::vector<std::string>{"reasoning:plan", "content:Looking.", "tool:call_0 shell {\"cmd\":\"ls\"}",
                                                "tool:my_id read {\"path\":\"a\"}"});

  conversation.push_back(Message{.role = Role::assistant, .content = first->content,
                                 .reasoning_content = first->reasoning, .tool_calls = first->tool_calls});
  conversation.push_back(Message{.role = Role::tool, .content = "a b", .tool_call_id = "call_0"});
  auto second = llm.generate(conversation, {}, GenOptions{.thinking = false}, nullptr);
  REQUIRE(second.ok());
  CHECK(second->content == "Two files.");
  CHECK(second->finish == FinishReason::stop);

  auto third = llm.generate(conversation, {}, GenOptions{}, nullptr);
  REQUIRE_FALSE(third.ok());
  CHECK(third.error().message == "scripted model: request 3 arrived but the script has only 2 turns");

  auto reqs = llm.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].messages.size() == 1);
  REQUIRE(reqs[0].tools.size() == 1);
  CHECK(reqs[0].tools[0].name == "shell");
  CHECK(reqs[0].options.temperature == 0.5);
  CHECK(reqs[1].messages.size() == 3);
  CHECK(reqs[1].messages[2].tool_call_id == "call_0");
  CHECK(reqs[1].tools.empty());
  CHECK_FALSE(reqs[1].options.thinking);
}

TEST_CASE("ScriptedLlm with a callback answers from the request and can fail") {
  ScriptedLlm llm([](const ScriptedLlm::Request& r, size_t n) -> Result<AssistantTurn> {
    if (r.messages.back().content == "overflow") return Error{"context_length_exceeded: too long"};
    return ScriptedLlm::answer("echo " + std::to_string(n) + ": " + r.messages.back().content);
  });
  auto a = llm.generate({Message{.role = Role::user, .content = "hi"}}, {}, GenOptions{}, nullptr);
  REQUIRE(a.ok());
  CHECK(a->content == "echo 0: hi");
  auto b = llm.generate({Message{.role = Role::user, .content = "overflow"}}, {}, GenOptions{}, nullptr);
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().message == "context_length_exceeded: too long");
  CHECK(llm.n_requests() == 2);
}

TEST_CASE("ScriptedLlm counts tokens by a fixed estimate that follows thinking retention") {
  ScriptedLlm llm(std::vector<AssistantTurn>{}, 4096);
  CHECK(llm.info().context_window == 4096);
  CHECK_FALSE(llm.info().exact_token_count);
  std::vector<Message> m{
      Message{.role = Role::user, .content = "0123456789"},                               // 10 bytes
      Message{.role = Role::assistant, .content = "abcd", .reasoning_content = std::string(40, 'r'),
              .tool_calls = {{"c", "ls", "{}"}}},                                          // 4 + 4 (+40)
      Message{.role = Role::tool, .content = "xyzxyzxyzxyz", .tool_call_id = "c"},       // 12
  };
  std::vector<ToolSpec> tools{{"ls", "list", json::object()}};  // 2 + 4 + 2 ("{}")
  // 30 bytes of text + 40 of visible reasoning + 8 of tool spec; 3 messages at 4 each.
  CHECK(llm.count_tokens(m, {}, true) == (30 + 40) / 4 + 12);
  CHECK(llm.count_tokens(m, {}, false) == 30 / 4 + 12);
  CHECK(llm.count_tokens(m, tools, true) == (30 + 40 + 8) / 4 + 12);
  m.push_back(Message{.role = Role::user, .content = "next"});  // the reasoning is no longer seen
  CHECK(llm.count_tokens(m, {}, true) == (30 + 4) / 4 + 16);

  // Usage a script leaves at zero is filled with the same estimate.
  ScriptedLlm replay({ScriptedLlm::answer("12345678")});
  auto turn = replay.generate(m, {}, GenOptions{}, nullptr);
  REQUIRE(turn.ok());
  CHECK(turn->usage.prompt_tokens == (30 + 4) / 4 + 16);
  CHECK(turn->usage.completion_tokens == 2);
}

TEST_CASE("ScriptedLlm honours should_stop: what was not shown is dropped and finish = stop") {
  struct StopAfterContent : RecordingSink {
    bool should_stop() override { return n_content > 0; }
  } sink;
  ScriptedLlm llm({ScriptedLlm::calls({{"a", "ls", "{}"}}, "think", "text")});
  auto turn = llm.generate({Message{.role = Role::user, .content = "go"}}, {}, GenOptions{}, &sink);
  REQUIRE(turn.ok());
  CHECK(turn_json(*turn)["tool_calls"].empty());
  CHECK(turn->content == "text");
  CHECK(turn->finish == FinishReason::stop);
  CHECK(sink.events == std::vector<std::string>{"reasoning:think", "content:text"});
}
