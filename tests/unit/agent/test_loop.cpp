// The agent loop over ScriptedLlm and the real coding tools: every final state, the messages each
// request carries, format errors and tool failures as observations, tool-call ids.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>

#include "tests/unit/agent/agent_rig.hpp"

using namespace dsa;
using namespace dsa::test;
using cli::FinalStatus;

TEST_CASE("a tool call runs, its result goes back as a tool message, and the answer ends the run") {
  Rig rig;
  ScriptedLlm llm({ScriptedLlm::calls({call("write_file", {{"path", "out.txt"}, {"content", "hello\n"}})},
                                      "I should write the file."),
                   ScriptedLlm::answer("Wrote out.txt.", "Done thinking.")});
  auto loop = rig.make(llm);
  auto r = loop->submit("Write hello to out.txt");

  CHECK(r.status == FinalStatus::answered);
  CHECK(r.answer == "Wrote out.txt.");
  CHECK(r.steps == 2);
  CHECK(r.tool_calls == 1);
  CHECK(read_text(rig.dir / "out.txt") == "hello\n");
  CHECK(rig.listener.events ==
        std::vector<std::string>{"step 1", "tool write_file", "result call_0 ok", "step 2", "final answered"});

  // The second request: system, user, the assistant turn with its reasoning kept, the tool result.
  REQUIRE(llm.n_requests() == 2);
  const auto& m = llm.requests()[1].messages;
  REQUIRE(m.size() == 4);
  CHECK(m[0].role == Role::system);
  CHECK(m[0].content == kSystem);
  CHECK(m[1].role == Role::user);
  CHECK(m[1].content == "Write hello to out.txt");
  CHECK(m[2].role == Role::assistant);
  CHECK(m[2].reasoning_content == std::optional<std::string>("I should write the file."));
  REQUIRE(m[2].tool_calls.size() == 1);
  CHECK(m[2].tool_calls[0].name == "write_file");
  CHECK(m[3].role == Role::tool);
  CHECK(m[3].tool_call_id == m[2].tool_calls[0].id);
  CHECK(m[3].content.find("out.txt") != std::string::npos);
  // The tools shown to the model are the registry's.
  CHECK(llm.requests()[1].tools.size() == rig.tools.specs().size());
  // Usage is the sum of the two turns.
  const auto& reqs = llm.requests();
  CHECK(r.usage.prompt_tokens ==
        ScriptedLlm::estimate_tokens(reqs[0].messages, reqs[0].tools, true) +
            ScriptedLlm::estimate_tokens(reqs[1].messages, reqs[1].tools, true));
}

TEST_CASE("a new user message drops earlier reasoning but keeps tool calls and results") {
  Rig rig;
  ScriptedLlm llm({ScriptedLlm::calls({call("shell", {{"command", "echo one"}})}, "first reasoning"),
                   ScriptedLlm::answer("one", "answer reasoning"), ScriptedLlm::answer("two", "second")});
  auto loop = rig.make(llm);
  REQUIRE(loop->submit("first").status == FinalStatus::answered);
  REQUIRE(loop->submit("second").status == FinalStatus::answered);
  const auto& m = llm.requests()[2].messages;
  REQUIRE(m.size() == 6);  // system, user, assistant+call, tool, assistant, user
  CHECK(m[2].tool_calls.size() == 1);
  CHECK_FALSE(m[2].reasoning_content.has_value());
  CHECK(m[3].role == Role::tool);
  CHECK(m[3].content.find("one") != std::string::npos);
  CHECK(m[4].content == "one");
  CHECK_FALSE(m[4].reasoning_content.has_value());
  CHECK(m[5].role == Role::user);
  CHECK(m[5].content == "second");
}

TEST_CASE("tool-call ids are unique across the conversation and each result names its call") {
  Rig rig;
  ScriptedLlm llm({ScriptedLlm::calls({call("shell", {{"command", "echo a"}}), call("shell", {{"command", "echo b"}})}),
                   ScriptedLlm::calls({call("shell", {{"command", "echo c"}}), call("shell", {{"command", "echo d"}})}),
                   ScriptedLlm::answer("done")});
  auto loop = rig.make(llm);
  REQUIRE(loop->submit("go").status == FinalStatus::answered);
  std::set<std::string> ids;
  std::vector<std::string> results_in_order;
  const auto& msgs = loop->conversation().messages();
  for (size_t i = 0; i < msgs.size(); ++i) {
    for (const auto& c : msgs[i].tool_calls) CHECK(ids.insert(c.id).second);
    if (msgs[i].role == Role::tool) results_in_order.push_back(msgs[i].tool_call_id);
  }
  CHECK(ids.size() == 4);
  // The scripted model numbered each turn's calls from call_0; the results follow the calls in order.
  std::vector<std::string> calls_in_order;
  for (const auto& m : msgs)
    for (const auto& c : m.tool_calls) calls_in_order.push_back(c.id);
  CHECK(results_in_order == calls_in_order);
  // Each result carries its own command's output.
  std::vector<std::string> outputs;
  for (const auto& m : msgs)
    if (m.role == Role::tool) outputs.push_back(m.content);
  REQUIRE(outputs.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(outputs[i].find(std::string(1, static_cast<char>('a' + i))) != std::string::npos);
}

TEST_CASE("a failing tool becomes an error observation and the run goes on") {
  Rig rig;
  ScriptedLlm llm({ScriptedLlm::calls({call("read_file", {{"path", "missing.txt"}})}),
                   ScriptedLlm::calls({call("no_such_tool", json::object())}), ScriptedLlm::answer("gave up")});
  auto loop = rig.make(llm);
  auto r = loop->submit("read missing.txt");
  CHECK(r.status == FinalStatus::answered);
  CHECK(rig.listener.events[2] == "result call_0 error");
  const auto& m1 = llm.requests()[1].messages.back();
  CHECK(m1.role == Role::tool);
  CHECK(m1.content.find("missing.txt") != std::string::npos);
  const auto& m2 = llm.requests()[2].messages.back();
  CHECK(m2.role == Role::tool);
  CHECK(m2.content.find("no_such_tool") != std::string::npos);
}

TEST_CASE("a format error is told back to the model, nothing runs, and the model recovers") {
  Rig rig;
  AssistantTurn bad = ScriptedLlm::calls({call("write_file", {{"path", "x.txt"}, {"content", "x"}})}, "thinking");
  bad.format_error = FormatError{"parameter 'content' was not closed"};
  AssistantTurn bad_no_calls = ScriptedLlm::answer("", "all of it was reasoning");
  bad_no_calls.format_error = FormatError{"no </think> in the output"};
  ScriptedLlm llm({bad, bad_no_calls, ScriptedLlm::answer("recovered")});
  auto loop = rig.make(llm);
  auto r = loop->submit("write x.txt");
  CHECK(r.status == FinalStatus::answered);
  CHECK(r.answer == "recovered");
  CHECK_FALSE(std::filesystem::exists(rig.dir / "x.txt"));

  std::string err;
  auto expected1 = rig.prompts.render("format_error", {{"error", "parameter 'content' was not closed"}}, &err);
  auto expected2 = rig.prompts.render("format_error", {{"error", "no </think> in the output"}}, &err);
  REQUIRE(expected1);
  REQUIRE(expected2);
  // With calls: each call is answered by the format-error text (the reasoning stays visible).
  const auto& m1 = llm.requests()[1].messages;
  CHECK(m1.back().role == Role::tool);
  CHECK(m1.back().content == *expected1);
  CHECK(m1[m1.size() - 2].reasoning_content == std::optional<std::string>("thinking"));
  // Without calls: a user message after the assistant turn.
  const auto& m2 = llm.requests()[2].messages;
  CHECK(m2.back().role == Role::user);
  CHECK(m2.back().content == *expected2);
}

TEST_CASE("consecutive format errors end the run with error") {
  Rig rig;
  rig.limits.max_format_errors = 2;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t) -> Result<AssistantTurn> {
    AssistantTurn t = ScriptedLlm::answer("half");
    t.format_error = FormatError{"garbage after the tool calls"};
    return t;
  });
  auto loop = rig.make(llm);
  auto r = loop->submit("go");
  CHECK(r.status == FinalStatus::error);
  CHECK(r.steps == 2);
  CHECK(llm.n_requests() == 2);
  CHECK(r.error.find("2 malformed") != std::string::npos);
}

TEST_CASE("max_steps: the step limit stops a model that never answers") {
  Rig rig;
  rig.limits.max_steps = 3;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    return ScriptedLlm::calls({call("shell", {{"command", "echo " + std::to_string(n)}})});
  });
  auto loop = rig.make(llm);
  auto r = loop->submit("loop forever");
  CHECK(r.status == FinalStatus::max_steps);
  CHECK(r.steps == 3);
  CHECK(r.tool_calls == 3);
  CHECK(llm.n_requests() == 3);
}

TEST_CASE("max_steps also ends a run over its total token budget") {
  Rig rig;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t) -> Result<AssistantTurn> {
    return ScriptedLlm::calls({call("shell", {{"command", "true"}})});
  });
  // Each request is at least the base prompt; two of them pass a budget of 1.5 base prompts.
  rig.limits.max_total_tokens = rig.base_tokens("spend") * 3 / 2;
  auto loop = rig.make(llm);
  auto r = loop->submit("spend");
  CHECK(r.status == FinalStatus::max_steps);
  CHECK(r.steps == 2);
  CHECK(r.error.find("token limit") != std::string::npos);
}

// Each step writes a file whose content is about `bytes` long: a round of bytes/4 tokens.
static ScriptedLlm::Responder big_rounds(size_t bytes) {
  return [bytes](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    return ScriptedLlm::calls(
        {call("write_file", {{"path", "f" + std::to_string(n) + ".txt"}, {"content", std::string(bytes, 'a')}})});
  };
}

TEST_CASE("max_resets: discard-all applies until the reset cap, then the run stops") {
  Rig rig;
  const int64_t base = rig.base_tokens("fill the context");
  rig.policy.strategy = Strategy::discard_all;
  rig.policy.window = base + 400;
  rig.policy.trigger = 0.9;  // a round of ~500 tokens always passes it
  rig.policy.max_resets = 2;
  rig.policy.note_after_discard = false;
  ScriptedLlm llm(big_rounds(2000), rig.policy.window);
  auto loop = rig.make(llm);
  auto r = loop->submit("fill the context");
  CHECK(r.status == FinalStatus::max_resets);
  CHECK(r.resets == 2);
  CHECK(r.steps == 3);  // one round before each reset, and one that fills it a third time
  int contexts = 0;
  for (const auto& e : rig.listener.events) contexts += e == "context discard-all";
  CHECK(contexts == 2);
  // After a reset the request starts again from system + task.
  const auto& m = llm.requests()[1].messages;
  REQUIRE(m.size() == 2);
  CHECK(m[0].role == Role::system);
  CHECK(m[1].content == "fill the context");
}

TEST_CASE("context_exhausted: with strategy none the run stops once the window is full") {
  Rig rig;
  const int64_t base = rig.base_tokens("fill it");
  rig.policy.strategy = Strategy::none;
  rig.policy.window = base + 400;
  ScriptedLlm llm(big_rounds(2000), rig.policy.window);
  auto loop = rig.make(llm);
  auto r = loop->submit("fill it");
  CHECK(r.status == FinalStatus::context_exhausted);
  CHECK(r.steps == 1);
  CHECK(r.resets == 0);
  CHECK(llm.n_requests() == 1);
}

TEST_CASE("context_exhausted: a message larger than the window is not kept, and the next one is answered") {
  Rig rig;
  const int64_t base = rig.base_tokens("hi");
  rig.policy.window = base + 600;
  ScriptedLlm llm(
      [](const ScriptedLlm::Request&, size_t) -> Result<AssistantTurn> { return ScriptedLlm::answer("ok"); },
      rig.policy.window);
  auto loop = rig.make(llm);
  const size_t before = loop->conversation().size();
  auto big = loop->submit(std::string(20000, 'x'));
  CHECK(big.status == FinalStatus::context_exhausted);
  CHECK(big.error.find("; the message was not kept") != std::string::npos);
  CHECK(llm.n_requests() == 0);
  CHECK(loop->conversation().size() == before);
  auto next = loop->submit("hi");
  CHECK(next.status == FinalStatus::answered);
  CHECK(llm.n_requests() == 1);
}

TEST_CASE("a server's context-length error applies the strategy and the call is retried") {
  Rig rig;
  rig.policy.strategy = Strategy::discard_all;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    if (n == 0) return ScriptedLlm::calls({call("shell", {{"command", "echo hi"}})});
    if (n == 1) return Error{"context_length_exceeded: maximum context length is 10 tokens"};
    return ScriptedLlm::answer("fits now");
  });
  auto loop = rig.make(llm);
  auto r = loop->submit("go");
  CHECK(r.status == FinalStatus::answered);
  CHECK(r.resets == 1);
  CHECK(llm.requests()[2].messages.size() < llm.requests()[1].messages.size());
}

TEST_CASE("timeout: the wall-time limit stops generation and runs nothing") {
  Rig rig;
  rig.limits.time_limit_s = 0.05;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t) -> Result<AssistantTurn> {
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    return ScriptedLlm::calls({call("write_file", {{"path", "late.txt"}, {"content", "x"}})});
  });
  auto loop = rig.make(llm);
  auto r = loop->submit("be slow");
  CHECK(r.status == FinalStatus::timeout);
  CHECK(llm.n_requests() == 1);
  CHECK_FALSE(std::filesystem::exists(rig.dir / "late.txt"));
}

TEST_CASE("timeout: a tool call ends by the run's time limit, and the calls after it are not run") {
  Rig rig;
  rig.limits.time_limit_s = 1.5;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    if (n == 0)
      return ScriptedLlm::calls(
          {call("shell", {{"command", "sleep 30"}}), call("write_file", {{"path", "late.txt"}, {"content", "x"}})});
    return ScriptedLlm::answer("too late");
  });
  auto loop = rig.make(llm);
  const auto start = std::chrono::steady_clock::now();
  auto r = loop->submit("be slow");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(r.status == FinalStatus::timeout);
  CHECK(r.error == "time limit of 1.5 s reached");
  CHECK(seconds < 15);  // the shell's own timeout is 20 s, the command 30 s
  CHECK(llm.n_requests() == 1);
  CHECK_FALSE(std::filesystem::exists(rig.dir / "late.txt"));
  const auto& messages = loop->conversation().messages();
  REQUIRE(messages.size() >= 2);
  CHECK(messages.back().content == "not run: the time limit of 1.5 s was reached");
}

TEST_CASE("invalid UTF-8 in the task or a tool's output reaches the model as U+FFFD") {
  Rig rig;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    if (n == 0) return ScriptedLlm::calls({call("shell", {{"command", "printf 'abc\\377def'"}})});
    return ScriptedLlm::answer("done");
  });
  auto loop = rig.make(llm);
  auto r = loop->submit("caf\xe9?");
  CHECK(r.status == FinalStatus::answered);
  REQUIRE(llm.n_requests() == 2);
  const auto& sent = llm.requests()[1].messages;
  const auto has = [&](const std::string& text) {
    return std::any_of(sent.begin(), sent.end(),
                       [&](const Message& m) { return m.content.find(text) != std::string::npos; });
  };
  CHECK(has("caf\xEF\xBF\xBD?"));
  CHECK(
      has("abc\xEF\xBF\xBD"
          "def"));
}

TEST_CASE("a reply cut off by a limit is told to the model as cut off, not as malformed") {
  Rig rig;
  GenOptions gen;
  gen.max_tokens = 64;
  // A thinking block broken off: the parser calls it malformed, the finish says why.
  auto cut = [](int64_t tokens) {
    AssistantTurn t;
    t.reasoning = "Let me think about";
    t.finish = FinishReason::length;
    t.usage.completion_tokens = tokens;
    t.format_error = FormatError{"malformed reply: the reply ended inside the thinking block (no </think>)"};
    return t;
  };
  ScriptedLlm llm([&](const ScriptedLlm::Request&, size_t n) -> Result<AssistantTurn> {
    if (n == 0) return cut(64);  // at max_tokens
    if (n == 1) return cut(20);  // before it: the context window was full
    return ScriptedLlm::answer("done");
  });
  auto loop = rig.make(llm, gen);
  auto r = loop->submit("go");
  CHECK(r.status == FinalStatus::answered);
  const auto& sent = llm.requests()[2].messages;
  std::vector<std::string> told;
  for (const auto& m : sent)
    if (m.role == Role::user && m.content != "go") told.push_back(m.content);
  REQUIRE(told.size() == 2);
  CHECK(told[0].find("the output reached the limit of 64 tokens before it finished") != std::string::npos);
  CHECK(told[1].find("the output was cut off after 20 tokens, before it finished (the context window") !=
        std::string::npos);
  CHECK(told[0].find("malformed") == std::string::npos);
}

TEST_CASE("error: a failing model ends the run with its error") {
  Rig rig;
  ScriptedLlm llm([](const ScriptedLlm::Request&, size_t) -> Result<AssistantTurn> {
    return Error{"HTTP 401 from http://x/v1/chat/completions: bad key"};
  });
  auto loop = rig.make(llm);
  auto r = loop->submit("go");
  CHECK(r.status == FinalStatus::error);
  CHECK(r.error == "HTTP 401 from http://x/v1/chat/completions: bad key");
  CHECK(r.steps == 0);
}

// Sets the interrupt flag when the first tool call is about to run.
class InterruptOnToolCall : public RecordingListener {
 public:
  explicit InterruptOnToolCall(std::atomic<bool>& flag) : flag_(flag) {}
  void on_tool_call(const ToolCall& c) override {
    RecordingListener::on_tool_call(c);
    flag_ = true;
  }

 private:
  std::atomic<bool>& flag_;
};

TEST_CASE("interrupted: Ctrl-C finishes the step cleanly, later calls are not run") {
  Rig rig;
  std::atomic<bool> flag{false};
  ScriptedLlm llm({ScriptedLlm::calls({call("write_file", {{"path", "a.txt"}, {"content", "a"}}),
                                       call("write_file", {{"path", "b.txt"}, {"content", "b"}})}),
                   ScriptedLlm::answer("never reached")});
  auto loop = rig.make(llm);
  InterruptOnToolCall listener(flag);
  loop->set_listener(&listener);
  loop->set_interrupt(&flag);
  auto r = loop->submit("write two files");
  CHECK(r.status == FinalStatus::interrupted);
  CHECK(std::filesystem::exists(rig.dir / "a.txt"));
  CHECK_FALSE(std::filesystem::exists(rig.dir / "b.txt"));
  CHECK(llm.n_requests() == 1);
  // Both calls have a result, so the conversation can go on.
  const auto& m = loop->conversation().messages();
  REQUIRE(m.size() == 5);
  CHECK(m[3].role == Role::tool);
  CHECK(m[4].role == Role::tool);
  CHECK(m[4].content.find("not run") != std::string::npos);

  // A later submission goes on from there once the flag is cleared.
  flag = false;
  auto r2 = loop->submit("and now?");
  CHECK(r2.status == FinalStatus::answered);
  CHECK(r2.answer == "never reached");
}

TEST_CASE("interrupted while generating: the partial turn's calls are dropped") {
  Rig rig;
  std::atomic<bool> flag{false};
  ScriptedLlm llm([&flag](const ScriptedLlm::Request&, size_t) -> Result<AssistantTurn> {
    flag = true;  // Ctrl-C arrives while the model is generating
    return ScriptedLlm::calls({call("write_file", {{"path", "a.txt"}, {"content", "a"}})}, "partial thought");
  });
  auto loop = rig.make(llm);
  loop->set_interrupt(&flag);
  auto r = loop->submit("go");
  CHECK(r.status == FinalStatus::interrupted);
  CHECK_FALSE(std::filesystem::exists(rig.dir / "a.txt"));
  for (const auto& m : loop->conversation().messages()) CHECK(m.tool_calls.empty());
}

TEST_CASE("reset starts over from the system prompt and ids stay unique in the new conversation") {
  Rig rig;
  ScriptedLlm llm({ScriptedLlm::calls({call("shell", {{"command", "echo x"}})}), ScriptedLlm::answer("one"),
                   ScriptedLlm::answer("two")});
  auto loop = rig.make(llm);
  REQUIRE(loop->submit("first").status == FinalStatus::answered);
  loop->reset("A new system prompt.");
  REQUIRE(loop->submit("second").status == FinalStatus::answered);
  const auto& m = llm.requests()[2].messages;
  REQUIRE(m.size() == 2);
  CHECK(m[0].content == "A new system prompt.");
  CHECK(m[1].content == "second");
}
