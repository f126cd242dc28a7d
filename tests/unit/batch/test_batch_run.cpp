// The batch scheduler end to end with a scripted search agent over the repo's evaluation set
// (examples/browse-eval): the browsing tools really run against the offline corpus, accuracy and
// the summary are computed right, parallel-fewest-step keeps the shortest answered attempt, a
// run killed with SIGKILL in the middle resumes with every task exactly once, and concurrent
// workers on the local engine get what one worker gets.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "cli/batch/batch_runner.hpp"
#include "engine/model/make_model.hpp"
#include "engine/runtime/local_llm.hpp"
#include "tests/scripted_llm.hpp"
#include "tests/test_support.hpp"
#include "tools/browse/browser.hpp"
#include "tools/browse/corpus.hpp"

using namespace dsa;
using namespace dsa::cli;
using namespace dsa::test;

namespace fs = std::filesystem;

namespace {

const std::string kEval = std::string(DSA_SOURCE_DIR) + "/examples/browse-eval";

struct EvalSet {
  std::vector<BatchTask> tasks;            // the first `n` questions
  std::map<std::string, std::string> answer_of;  // question -> answer
};

EvalSet load_eval(size_t n) {
  auto all = load_batch_tasks(kEval + "/questions.csv");
  REQUIRE_MESSAGE(all.ok(), all.error().message);
  EvalSet e;
  for (size_t i = 0; i < n && i < all->size(); ++i) {
    e.tasks.push_back((*all)[i]);
    e.answer_of[(*all)[i].question] = *(*all)[i].answer;
  }
  return e;
}

// The question inside the BrowseComp query template (its first line).
std::string question_of(const std::vector<Message>& msgs) {
  for (auto it = msgs.rbegin(); it != msgs.rend(); ++it) {
    if (it->role == Role::user) return it->content.substr(0, it->content.find('\n'));
  }
  return "";
}

// A scripted search agent: search the question, open the first result, then answer; the answer is
// right when the question has an even length, wrong otherwise. It checks that the tools ran.
ScriptedLlm::Responder search_agent(const EvalSet& eval, int delay_ms = 0, std::atomic<int>* bad_obs = nullptr) {
  return [&eval, delay_ms, bad_obs](const ScriptedLlm::Request& r, size_t) -> Result<AssistantTurn> {
    if (delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    int tools_since_user = 0;
    std::string last_obs;
    for (auto it = r.messages.rbegin(); it != r.messages.rend() && it->role != Role::user; ++it) {
      if (it->role == Role::tool) {
        if (tools_since_user == 0) last_obs = it->content;
        ++tools_since_user;
      }
    }
    const std::string q = question_of(r.messages);
    if (tools_since_user == 0) return ScriptedLlm::calls({{"", "search", json{{"query", q}}.dump()}}, "Search first.");
    if (tools_since_user == 1) {
      if (bad_obs && last_obs.find("Search results for") == std::string::npos) ++*bad_obs;
      return ScriptedLlm::calls({{"", "open", R"({"id":0})"}}, "Open the top hit.");
    }
    if (bad_obs && last_obs.find("**viewing lines [") == std::string::npos) ++*bad_obs;
    auto it = eval.answer_of.find(q);
    const std::string right = it == eval.answer_of.end() ? "?" : it->second;
    const std::string ans = (q.size() % 2 == 0) ? right : "definitely wrong";
    return ScriptedLlm::answer("Explanation: read it.\nExact Answer: " + ans + "\nConfidence: 80%", "Done.");
  };
}

struct Harness {
  TempDir dir{"dsa-batchrun"};
  std::shared_ptr<const Corpus> corpus;
  prompts::PromptSet prompts;
  Harness() {
    auto st = build_corpus_index(kEval + "/corpus.jsonl", dir / "corpus.db");
    REQUIRE_MESSAGE(st.ok(), st.error().message);
    auto c = Corpus::open(dir / "corpus.db");
    REQUIRE(c.ok());
    corpus = std::move(c.value());
  }

  struct Agent final : TaskAgent {
    AgentLoop& loop() override { return *loop_; }
    std::vector<std::string> retrieved_docids() const override { return browser->retrieved(); }
    ToolRegistry tools;
    std::shared_ptr<Browser> browser;
    std::unique_ptr<AgentLoop> loop_;
  };

  AgentFactory factory(Llm& llm, LoopLimits limits = {}, GenOptions gen = {}) {
    return [this, &llm, limits, gen]() -> Result<std::unique_ptr<TaskAgent>> {
      auto a = std::make_unique<Agent>();
      a->browser = std::make_shared<Browser>(make_corpus_backend(corpus));
      add_browse_tools(a->tools, a->browser, BrowseToolSet::deepseek);
      ToolContext ctx;
      ctx.workdir = dir.path();
      a->loop_ = std::make_unique<AgentLoop>(llm, a->tools, ContextPolicy{}, limits, prompts, ctx, gen);
      a->loop_->conversation().append_system("You are a search agent.");
      return std::unique_ptr<TaskAgent>(std::move(a));
    };
  }
};

std::vector<json> read_results(const fs::path& file) {
  std::vector<json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("batch: scripted search agent over the evaluation set, graded by exact match") {
  Harness h;
  const EvalSet eval = load_eval(10);
  std::atomic<int> bad_obs{0};
  ScriptedLlm llm(search_agent(eval, 0, &bad_obs));
  BatchConfig cfg;
  cfg.out_dir = h.dir / "out";
  cfg.workers = 3;
  cfg.progress = false;
  auto s = run_batch(eval.tasks, cfg, h.factory(llm), nullptr, h.prompts);
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  CHECK(bad_obs.load() == 0);  // every observation was a real search page, then a real document

  int expect_correct = 0;
  for (const auto& t : eval.tasks) expect_correct += t.question.size() % 2 == 0 ? 1 : 0;
  CHECK(s->ran == 10);
  CHECK(s->graded == 10);
  CHECK(s->correct == expect_correct);
  const auto recs = read_results(cfg.out_dir / "results.jsonl");
  REQUIRE(recs.size() == 10);
  for (const auto& r : recs) {
    CHECK(r["status"] == "answered");
    CHECK(r["steps"] == 3);
    CHECK(r["tool_calls"]["search"] == 1);
    CHECK(r["tool_calls"]["open"] == 1);
    CHECK(r["retrieved_docids"].size() == 1);
    CHECK(r["stated_confidence"] == 80.0);
    CHECK(fs::exists(cfg.out_dir / "trajectories" / (r["id"].get<std::string>() + ".json")));
    auto run = json::parse(read_text(cfg.out_dir / "runs" / (r["id"].get<std::string>() + ".json")));
    CHECK(run["status"] == "completed");
    CHECK(run["tool_call_counts"]["search"] == 1);
  }
  auto summary = json::parse(read_text(cfg.out_dir / "summary.json"));
  CHECK(summary["accuracy"].get<double>() == doctest::Approx(expect_correct / 10.0));
  CHECK(summary["avg_steps"].get<double>() == doctest::Approx(3.0));
  CHECK(summary["avg_tool_calls"]["search"].get<double>() == doctest::Approx(1.0));
  CHECK(summary["per_strategy"]["discard-all"]["tasks"] == 10);

  // A rerun has nothing left to do.
  auto again = run_batch(eval.tasks, cfg, h.factory(llm), nullptr, h.prompts);
  REQUIRE(again.ok());
  CHECK(again->ran == 0);
  CHECK(again->done_before == 10);
}

TEST_CASE("batch: judge grading parses the grader's captured group") {
  Harness h;
  const EvalSet eval = load_eval(4);
  ScriptedLlm llm(search_agent(eval));
  // The judge says yes exactly when the response contains the correct answer.
  ScriptedLlm judge([&](const ScriptedLlm::Request& r, size_t) -> Result<AssistantTurn> {
    const std::string& p = r.messages.back().content;
    const auto ca = p.find("[correct_answer]: ");
    const std::string correct = p.substr(ca + 18, p.find('\n', ca) - ca - 18);
    const auto resp = p.find("[response]: ");
    const bool yes = p.substr(resp, ca - resp).find("Exact Answer: " + correct) != std::string::npos;
    return ScriptedLlm::answer(std::string("extracted_final_answer: x\nreasoning: r\ncorrect: ") + (yes ? "yes" : "no") +
                               "\nconfidence: 80%");
  });
  BatchConfig cfg;
  cfg.out_dir = h.dir / "judged";
  cfg.grade = GradeMode::judge;
  cfg.progress = false;
  auto s = run_batch(eval.tasks, cfg, h.factory(llm), &judge, h.prompts);
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  int expect_correct = 0;
  for (const auto& t : eval.tasks) expect_correct += t.question.size() % 2 == 0 ? 1 : 0;
  CHECK(s->correct == expect_correct);
  CHECK(judge.requests().size() == 4);
  for (const auto& r : read_results(cfg.out_dir / "results.jsonl")) CHECK(r["judge"]["found"] == true);
}

TEST_CASE("batch: tasks the model failed on run again, and answers the judge failed on are graded again") {
  Harness h;
  const EvalSet eval = load_eval(4);
  // The first run: the server fails every request of the first question's task; the judge fails
  // every other call.
  const std::string failing = eval.tasks[0].question;
  bool server_down = true, judge_down = true;
  auto agent = search_agent(eval);
  ScriptedLlm llm([&](const ScriptedLlm::Request& r, size_t n) -> Result<AssistantTurn> {
    if (server_down && question_of(r.messages) == failing) return Error{"HTTP 503 from http://x/v1: overloaded"};
    return agent(r, n);
  });
  std::atomic<int> judge_calls{0};
  ScriptedLlm judge([&](const ScriptedLlm::Request&, size_t) -> Result<AssistantTurn> {
    if (judge_down && judge_calls++ % 2 == 1) return Error{"HTTP 429 from http://judge/v1: slow down"};
    return ScriptedLlm::answer("extracted_final_answer: x\nreasoning: r\ncorrect: yes\nconfidence: 90%");
  });
  BatchConfig cfg;
  cfg.out_dir = h.dir / "flaky";
  cfg.grade = GradeMode::judge;
  cfg.progress = false;
  auto first = run_batch(eval.tasks, cfg, h.factory(llm), &judge, h.prompts);
  REQUIRE_MESSAGE(first.ok(), first.error().message);
  CHECK(first->ran == 4);
  CHECK(first->errors == 1);
  CHECK(first->grading_errors >= 1);
  CHECK(first->graded + first->grading_errors == 3);  // the failed task is not graded
  const int64_t ungraded = first->grading_errors;

  server_down = judge_down = false;
  auto second = run_batch(eval.tasks, cfg, h.factory(llm), &judge, h.prompts);
  REQUIRE_MESSAGE(second.ok(), second.error().message);
  CHECK(second->ran == 1);  // only the failed task
  CHECK(second->done_before == 3);
  CHECK(second->regraded == ungraded);
  CHECK(second->errors == 0);
  CHECK(second->grading_errors == 0);
  CHECK(second->graded == 4);
  CHECK(second->correct == 4);
  auto summary = json::parse(read_text(cfg.out_dir / "summary.json"));
  CHECK(summary["accuracy"].get<double>() == doctest::Approx(1.0));
  CHECK(summary["tasks"] == 4);
  // The file keeps every attempt; the last record of an id counts.
  CHECK(read_results(cfg.out_dir / "results.jsonl").size() == size_t(4 + 1 + ungraded));
}

TEST_CASE("batch summary: accuracy is null, and n/a in the table, when nothing was graded") {
  const json s = summarize_results({json{{"id", "a"}, {"status", "error"}, {"strategy", "none"}}});
  CHECK(s["accuracy"].is_null());
  CHECK(s["statuses"]["error"] == 1);
  CHECK(summary_table(s).find("n/a") != std::string::npos);
}

TEST_CASE("batch: parallel-fewest-step keeps the answered attempt with the fewest steps") {
  Harness h;
  const EvalSet eval = load_eval(1);
  // Attempt 1 searches twice before answering (4 steps); attempt 2 answers after one search (2 steps).
  std::atomic<int> attempt{0};
  ScriptedLlm llm([&](const ScriptedLlm::Request& r, size_t) -> Result<AssistantTurn> {
    int tools = 0;
    for (auto it = r.messages.rbegin(); it != r.messages.rend() && it->role != Role::user; ++it) tools += it->role == Role::tool;
    if (tools == 0) ++attempt;
    const int limit = attempt.load() == 1 ? 3 : 1;
    if (tools < limit) return ScriptedLlm::calls({{"", "search", R"({"query":"river"})"}});
    return ScriptedLlm::answer("Exact Answer: x\nConfidence: 10%");
  });
  BatchConfig cfg;
  cfg.out_dir = h.dir / "pfs";
  cfg.parallel_fewest_step = 2;
  cfg.progress = false;
  auto s = run_batch(eval.tasks, cfg, h.factory(llm), nullptr, h.prompts);
  REQUIRE(s.ok());
  const auto recs = read_results(cfg.out_dir / "results.jsonl");
  REQUIRE(recs.size() == 1);
  CHECK(recs[0]["steps"] == 2);
  CHECK(recs[0]["kept_attempt"] == 1);
  CHECK(recs[0]["attempts"].size() == 2);
}

TEST_CASE("batch: a run killed with SIGKILL resumes with every task exactly once") {
  Harness h;
  const EvalSet eval = load_eval(10);
  const fs::path out = h.dir / "killed";
  const fs::path results = out / "results.jsonl";
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // a slow run, killed from outside while it works
    ScriptedLlm slow(search_agent(eval, 40));
    BatchConfig cfg;
    cfg.out_dir = out;
    cfg.workers = 2;
    cfg.progress = false;
    (void)run_batch(eval.tasks, cfg, h.factory(slow), nullptr, h.prompts);
    _exit(0);
  }
  size_t lines = 0;
  for (int i = 0; i < 600 && lines < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream in(results);
    lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status));
  REQUIRE(lines >= 3);
  const size_t done_at_kill = read_results(results).size();
  CHECK(done_at_kill < 10);

  ScriptedLlm llm(search_agent(eval));
  BatchConfig cfg;
  cfg.out_dir = out;
  cfg.workers = 2;
  cfg.progress = false;
  auto s = run_batch(eval.tasks, cfg, h.factory(llm), nullptr, h.prompts);
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  CHECK(s->done_before == static_cast<int64_t>(done_at_kill));
  std::map<std::string, int> seen;
  for (const auto& r : read_results(results)) ++seen[r["id"].get<std::string>()];
  CHECK(seen.size() == 10);
  for (const auto& [id, n] : seen) CHECK_MESSAGE(n == 1, id);
}

TEST_CASE("batch: concurrent workers on the local engine get the records one worker gets") {
  Harness h;
  const EvalSet eval = load_eval(4);
  auto cfg_model = preset_config("tiny");
  REQUIRE(cfg_model.ok());
  REQUIRE(make_model(h.dir / "tiny", *cfg_model, {.seed = 5}).ok());
  // The workers' conversations fit the pool together, so every step reuses its own conversation's
  // slot, as with one worker; greedy decoding then gives the same turns.
  const LoopLimits limits{.max_steps = 3};
  GenOptions gen;
  gen.max_tokens = 12;
  std::map<std::string, json> first;
  for (int workers : {1, 3}) {
    CAPTURE(workers);
    auto llm = LocalLlm::open(h.dir / "tiny", AttentionMode::sparse, 8192);
    REQUIRE(llm.ok());
    BatchConfig cfg;
    cfg.out_dir = h.dir / ("local-" + std::to_string(workers));
    cfg.workers = workers;
    cfg.grade = GradeMode::none;
    cfg.progress = false;
    auto s = run_batch(eval.tasks, cfg, h.factory(**llm, limits, gen), nullptr, h.prompts);
    REQUIRE_MESSAGE(s.ok(), s.error().message);
    const auto recs = read_results(cfg.out_dir / "results.jsonl");
    REQUIRE(recs.size() == 4);
    for (const json& r : recs) {
      const json seen = {r["status"], r["steps"], r["response"], r["usage"]["prompt_tokens"],
                         r["usage"]["completion_tokens"], r["tool_calls"]};
      if (workers == 1) {
        first[r["id"].get<std::string>()] = seen;
      } else {
        CHECK(seen == first[r["id"].get<std::string>()]);
      }
    }
  }
}

TEST_CASE("answers_match normalises case, spaces and punctuation") {
  CHECK(answers_match(" Port  Almund. ", "port almund"));
  CHECK(answers_match("Café Lümen", "café lümen"));
  CHECK(!answers_match("1911", "1912"));
  CHECK(!answers_match("", ""));
}
