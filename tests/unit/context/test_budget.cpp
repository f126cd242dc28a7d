// The budget check and the overflow strategies, with a tiny window and a fake model whose token
// count is characters / 4 (fake_llm.hpp).
#include <doctest/doctest.h>

#include "context/budget.hpp"
#include "tests/test_support.hpp"
#include "tests/unit/context/fake_llm.hpp"

using namespace dsa;
using test::FakeLlm;
using test::visible_chars;

namespace {

const std::string kSystem(40, 'S');
const std::string kTask(40, 'T');

// (Built by appending: GCC 12 warns falsely on `"literal" + std::string` here.)
std::string numbered(char prefix, int i) {
  std::string s(1, prefix);
  s += std::to_string(i);
  return s;
}
std::string reasoning_of(int i) { return numbered('r', i).append(98, '.'); }

void add_round(Conversation& c, int i, size_t result_chars = 300) {
  AssistantTurn t;
  t.reasoning = reasoning_of(i);
  std::string args = "{\"i\":";
  args += std::to_string(i);
  args += "}";
  t.tool_calls.push_back(ToolCall{numbered('c', i), "shell", args});
  c.append_assistant(t);
  c.append_tool_result(numbered('c', i), std::string(result_chars, 'o'));
}

Conversation task_with_rounds(int n) {
  Conversation c;
  c.append_system(kSystem);
  c.append_user(kTask);
  for (int i = 1; i <= n; ++i) add_round(c, i);
  return c;
}

// The call ids of the rounds left, in order.
std::vector<std::string> round_ids(const Conversation& c) {
  std::vector<std::string> ids;
  for (const Round& r : c.rounds()) ids.push_back(c.messages()[r.begin].tool_calls[0].id);
  return ids;
}

int64_t seen_tokens(const Conversation& c) { return visible_chars(c.messages_for_model(true)) / 4; }

std::string rendered(const std::string& name, const prompts::Vars& vars) {
  std::string err;
  auto text = prompts::PromptSet().render(name, vars, &err);
  REQUIRE_MESSAGE(text, err);
  return *text;
}

ContextPolicy small_policy(Strategy s) {
  ContextPolicy p;
  p.window = 1000;  // 8 rounds of ~103 tokens + 20 pass the trigger of 800
  p.strategy = s;
  return p;
}

const GenOptions kThinking{};
const prompts::PromptSet& prompt_set() {
  static const prompts::PromptSet set;
  return set;
}

}  // namespace

TEST_CASE("under the trigger nothing happens") {
  FakeLlm llm;
  Conversation c = task_with_rounds(8);
  const json before = c.to_json();
  ContextPolicy p = small_policy(Strategy::summary);
  p.window = 100000;
  ContextManager m(p, prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->status == ContextStatus::proceed);
  CHECK_FALSE(out->record);
  CHECK(out->check.prompt_tokens == seen_tokens(c));
  CHECK(out->check.trigger_tokens == 80000);
  CHECK(c.to_json() == before);
  CHECK(llm.generate_calls.empty());
}

TEST_CASE("the budget counts what the model sees: reasoning before the last user message is not counted") {
  FakeLlm llm;
  Conversation c = task_with_rounds(2);
  const int64_t with_reasoning = check_budget(ContextPolicy{}, llm, c, {}, true).prompt_tokens;
  CHECK(with_reasoning == visible_chars(c.messages()) / 4);
  c.append_user("more");
  const int64_t after_user = check_budget(ContextPolicy{}, llm, c, {}, true).prompt_tokens;
  CHECK(after_user == (visible_chars(c.messages()) - 2 * 100) / 4);
}

TEST_CASE("discard-75 drops the oldest 75% of rounds and keeps the newest with their reasoning") {
  FakeLlm llm;
  Conversation c = task_with_rounds(8);
  const int64_t tokens_before = seen_tokens(c);
  REQUIRE(tokens_before > 800);
  ContextManager m(small_policy(Strategy::discard_75), prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->status == ContextStatus::proceed);
  REQUIRE(out->record);
  const ContextRecord& r = *out->record;
  CHECK(r.applied == Strategy::discard_75);
  CHECK(r.trigger == ContextTrigger::budget);
  CHECK(r.rounds_dropped == 6);
  CHECK(r.rounds_kept == 2);
  CHECK(r.reset_index == 1);
  CHECK(r.tokens_before == tokens_before);
  CHECK(r.tokens_after == seen_tokens(c));
  CHECK(out->check.prompt_tokens == r.tokens_after);

  CHECK(round_ids(c) == std::vector<std::string>{"c7", "c8"});
  REQUIRE(c.size() == 7);
  CHECK(c.messages()[0].content == kSystem);
  CHECK(c.messages()[1].content == kTask);
  CHECK(c.origin(2) == Origin::note);
  CHECK(c.messages()[2].content == rendered("history_dropped", {{"rounds_dropped", "6"}}));
  // The note sits before the kept rounds, so their reasoning is still sent.
  const auto seen = c.messages_for_model(true);
  CHECK(seen[3].reasoning_content == reasoning_of(7));
  CHECK(seen[5].reasoning_content == reasoning_of(8));
  CHECK(llm.generate_calls.empty());
}

TEST_CASE("discard-75 by tokens drops rounds until 75% of the round tokens are gone") {
  auto build = [] {
    Conversation c;
    c.append_system(kSystem);
    c.append_user(kTask);
    add_round(c, 1, 3000);  // most of the tokens
    for (int i = 2; i <= 5; ++i) add_round(c, i, 100);
    return c;
  };
  FakeLlm llm;
  ContextPolicy p = small_policy(Strategy::discard_75);
  p.note_after_discard = false;
  SUBCASE("by tokens: the one big round is 75%") {
    p.discard_by_tokens = true;
    Conversation c = build();
    ContextManager m(p, prompt_set());
    auto out = m.before_call(llm, c, {}, kThinking);
    REQUIRE(out.ok());
    REQUIRE(out->record);
    CHECK(out->record->rounds_dropped == 1);
    CHECK(round_ids(c) == std::vector<std::string>{"c2", "c3", "c4", "c5"});
  }
  SUBCASE("by count: four of five rounds") {
    Conversation c = build();
    ContextManager m(p, prompt_set());
    auto out = m.before_call(llm, c, {}, kThinking);
    REQUIRE(out.ok());
    REQUIRE(out->record);
    CHECK(out->record->rounds_dropped == 4);
    CHECK(round_ids(c) == std::vector<std::string>{"c5"});
  }
}

TEST_CASE("discard-all continues from system + task; user messages and final answers stay") {
  FakeLlm llm;
  Conversation c = task_with_rounds(3);
  c.append_assistant(AssistantTurn{.content = "first answer"});
  c.append_user("follow-up");
  for (int i = 4; i <= 9; ++i) add_round(c, i);
  ContextPolicy p = small_policy(Strategy::discard_all);
  SUBCASE("with the note") {
    ContextManager m(p, prompt_set());
    auto out = m.before_call(llm, c, {}, kThinking);
    REQUIRE(out.ok());
    REQUIRE(out->record);
    CHECK(out->record->rounds_dropped == 9);
    CHECK(out->record->rounds_kept == 0);
    REQUIRE(c.size() == 5);
    CHECK(c.messages()[0].content == kSystem);
    CHECK(c.messages()[1].content == kTask);
    CHECK(c.messages()[2].content == rendered("history_dropped", {{"rounds_dropped", "9"}}));
    CHECK(c.messages()[3].content == "first answer");
    CHECK(c.messages()[4].content == "follow-up");
  }
  SUBCASE("without the note") {
    p.note_after_discard = false;
    ContextManager m(p, prompt_set());
    auto out = m.before_call(llm, c, {}, kThinking);
    REQUIRE(out.ok());
    REQUIRE(out->record);
    REQUIRE(c.size() == 4);
    CHECK(c.rounds().empty());
    CHECK(out->record->tokens_after == (40 + 40 + 12 + 9) / 4);
  }
}

TEST_CASE("summary: one extra call over the trajectory, then system + task + summary") {
  FakeLlm llm;
  Conversation c = task_with_rounds(8);
  const std::vector<Message> seen_before = c.messages_for_model(true);
  ContextManager m(small_policy(Strategy::summary), prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  REQUIRE(out->record);
  const ContextRecord& r = *out->record;
  CHECK(r.applied == Strategy::summary);
  CHECK(r.summary == llm.summary);
  CHECK(r.rounds_dropped == 8);
  CHECK(r.summary_usage.completion_tokens == static_cast<int64_t>(llm.summary.size()) / 4);
  CHECK(r.fallback_reason.empty());

  // The summary request is the whole trajectory as the model sees it, plus the summary prompt.
  REQUIRE(llm.generate_calls.size() == 1);
  const auto& asked = llm.generate_calls[0];
  REQUIRE(asked.size() == seen_before.size() + 1);
  for (size_t i = 0; i < seen_before.size(); ++i) CHECK(to_json(asked[i]) == to_json(seen_before[i]));
  CHECK(asked.back().role == Role::user);
  CHECK(asked.back().content == rendered("summary", {}));

  REQUIRE(c.size() == 3);
  CHECK(c.messages()[0].content == kSystem);
  CHECK(c.messages()[1].content == kTask);
  CHECK(c.origin(2) == Origin::summary);
  CHECK(c.messages()[2].role == Role::user);
  CHECK(c.messages()[2].content == rendered("summary_resume", {{"summary", llm.summary}}));
  CHECK(r.tokens_after == seen_tokens(c));

  SUBCASE("a second summary covers the first and replaces it") {
    for (int i = 9; i <= 16; ++i) add_round(c, i);
    llm.summary = "SECOND";
    auto again = m.before_call(llm, c, {}, kThinking);
    REQUIRE(again.ok());
    REQUIRE(again->record);
    CHECK(again->record->reset_index == 2);
    REQUIRE(llm.generate_calls.size() == 2);
    CHECK(llm.generate_calls[1][2].content ==
          rendered("summary_resume", {{"summary", "SUMMARY: found X, dead end Y"}}));
    REQUIRE(c.size() == 3);
    CHECK(c.messages()[2].content == rendered("summary_resume", {{"summary", "SECOND"}}));
  }
}

TEST_CASE("a failed summary call falls back to discard-all and records why") {
  FakeLlm llm;
  llm.fail_with = "HTTP 500: upstream boom";
  Conversation c = task_with_rounds(8);
  ContextManager m(small_policy(Strategy::summary), prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  REQUIRE(out->record);
  const ContextRecord& r = *out->record;
  CHECK(r.requested == Strategy::summary);
  CHECK(r.applied == Strategy::discard_all);
  CHECK(r.fallback_reason.find("upstream boom") != std::string::npos);
  CHECK(r.rounds_dropped == 8);
  CHECK(c.rounds().empty());
  REQUIRE(c.size() == 3);
  CHECK(c.origin(2) == Origin::note);
  const json j = to_json(r);
  CHECK(j["strategy"] == "discard-all");
  CHECK(j["requested_strategy"] == "summary");
  CHECK(j["fallback_reason"].get<std::string>().find("upstream boom") != std::string::npos);
}

TEST_CASE("an empty summary also falls back") {
  FakeLlm llm;
  llm.summary = "  \n";
  Conversation c = task_with_rounds(8);
  ContextManager m(small_policy(Strategy::summary), prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  REQUIRE(out->record);
  CHECK(out->record->applied == Strategy::discard_all);
  CHECK_FALSE(out->record->fallback_reason.empty());
}

TEST_CASE("none: run until the window is full, then context_exhausted") {
  FakeLlm llm;
  Conversation c = task_with_rounds(8);  // over 800, under 1000
  ContextManager m(small_policy(Strategy::none), prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->status == ContextStatus::proceed);
  CHECK_FALSE(out->record);
  add_round(c, 9);
  add_round(c, 10);
  const json before = c.to_json();
  out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->status == ContextStatus::context_exhausted);
  CHECK(out->check.prompt_tokens > 1000);
  CHECK(c.to_json() == before);
}

TEST_CASE("resets are capped by max_resets") {
  FakeLlm llm;
  Conversation c = task_with_rounds(8);
  ContextPolicy p = small_policy(Strategy::discard_all);
  p.max_resets = 1;
  ContextManager m(p, prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->record);
  CHECK(m.resets() == 1);
  for (int i = 9; i <= 16; ++i) add_round(c, i);
  const json before = c.to_json();
  out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->status == ContextStatus::max_resets);
  CHECK_FALSE(out->record);
  CHECK(c.to_json() == before);
}

TEST_CASE("a task larger than the window is context_exhausted even after discarding") {
  FakeLlm llm;
  Conversation c;
  c.append_system(kSystem);
  c.append_user(std::string(5000, 'T'));
  add_round(c, 1);
  ContextManager m(small_policy(Strategy::discard_all), prompt_set());
  auto out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->record);
  CHECK(out->status == ContextStatus::context_exhausted);
  // Nothing left to remove: no further application, no reset counted.
  out = m.before_call(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK_FALSE(out->record);
  CHECK(m.resets() == 1);
  CHECK(out->status == ContextStatus::context_exhausted);
}

TEST_CASE("a server 'context length exceeded' answer applies the strategy whatever the count") {
  FakeLlm llm;
  CHECK(is_context_overflow_error(make_error("HTTP 400: This model's maximum context length is 131072 tokens")));
  CHECK(is_context_overflow_error(make_error("error: context_length_exceeded")));
  CHECK_FALSE(is_context_overflow_error(make_error("HTTP 429: rate limit reached")));

  Conversation c = task_with_rounds(2);  // far under the trigger
  ContextManager m(small_policy(Strategy::discard_75), prompt_set());
  auto out = m.after_overflow_error(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->status == ContextStatus::proceed);
  REQUIRE(out->record);
  CHECK(out->record->trigger == ContextTrigger::server_overflow);
  CHECK(out->record->rounds_dropped == 2);  // floor(2/4) = 0 rounds stay

  ContextManager none(small_policy(Strategy::none), prompt_set());
  out = none.after_overflow_error(llm, c, {}, kThinking);
  REQUIRE_MESSAGE(out.ok(), (out.ok() ? std::string() : out.error().message));
  CHECK(out->status == ContextStatus::context_exhausted);
}

TEST_CASE("strategy names round-trip") {
  for (Strategy s : {Strategy::none, Strategy::summary, Strategy::discard_75, Strategy::discard_all})
    CHECK(parse_strategy(strategy_name(s)) == s);
  CHECK(parse_strategy("discard-75") == Strategy::discard_75);
  CHECK_FALSE(parse_strategy("discard75"));
}

TEST_CASE("a policy the strategies cannot work with is an error naming the flag") {
  CHECK(check_policy(ContextPolicy{}).ok());
  ContextPolicy p;
  p.trigger = 1.5;
  auto r = check_policy(p);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("--context-trigger") != std::string::npos);
  p = ContextPolicy{};
  p.window = 0;
  CHECK_FALSE(check_policy(p).ok());
  p = ContextPolicy{};
  p.max_resets = -1;
  CHECK_FALSE(check_policy(p).ok());
}

TEST_CASE("a broken override template is refused when the prompts directory is read, before any run") {
  test::TempDir dir("prompts");
  test::write_text(dir / "history_dropped.txt", "dropped {{count}} rounds\n");
  std::string err;
  CHECK_FALSE(prompts::PromptSet::with_overrides(dir.path(), &err));
  CHECK(err.find("history_dropped") != std::string::npos);
  CHECK(err.find("'count'") != std::string::npos);
}
