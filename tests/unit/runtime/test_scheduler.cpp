// BatchScheduler on the tiny FP8 checkpoint, against the Generator as the single-request reference:
// concurrent requests sharing steps each get exactly what they get alone; finished requests leave
// their prefixes in slots for the next request of the same conversation, and a new request copies
// the prompt it shares with a running one; a pool too small for all requests preempts and
// recomputes without changing any output; a request too big for the pool, a bad id or a failing
// callback ends only its own request; a callback can stop its request early.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "engine/runtime/generator.hpp"
#include "engine/runtime/scheduler.hpp"
#include "tests/unit/engine/golden.hpp"
#include "tests/unit/runtime/runtime_test_support.hpp"

using namespace dsa;
using dsa::test::golden_fp8;
using dsa::test::load_tiny;

namespace {

constexpr int64_t kContext = 256;

GenerateParams greedy(int64_t max_tokens) {
  GenerateParams p;
  p.max_tokens = max_tokens;
  return p;
}

GenerateParams seeded(int64_t max_tokens, uint64_t seed) {
  GenerateParams p = greedy(max_tokens);
  p.sampling = {.temperature = 1.0, .top_p = 0.9, .seed = seed};
  return p;
}

// The golden prompt rotated by `shift`, cut to n ids: prompts that share no prefix.
std::vector<int32_t> prompt_of(size_t shift, size_t n) {
  std::vector<int32_t> p = golden_fp8().prompt;
  std::rotate(p.begin(), p.begin() + shift, p.end());
  p.resize(n);
  return p;
}

std::unique_ptr<BatchScheduler> scheduler(int64_t pool_tokens, int64_t prefill_chunk = 16) {
  return std::make_unique<BatchScheduler>(load_tiny(), cpu::LatentFormat::fp8,
                                          SchedulerOptions{.max_context = kContext, .pool_tokens = pool_tokens,
                                                           .n_slots = 8, .prefill_chunk = prefill_chunk});
}

// What the Generator gives for the request alone, on fresh caches.
Generation alone(std::span<const int32_t> prompt, const GenerateParams& params) {
  Generator gen(load_tiny(), cpu::LatentFormat::fp8, kContext);
  auto g = gen.generate(prompt, params, {});
  REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.error().message));
  return *g;
}

struct Job {
  std::vector<int32_t> prompt;
  GenerateParams params;
  TokenCallback on_token = {};
};

struct Outcome {
  std::vector<Generation> results;
  std::vector<std::string> errors;  // empty where the job succeeded
  std::vector<size_t> order;        // the job of each generated id, in callback order
};

// Runs every job on its own thread. Job 0 starts alone; its first callback holds the engine until
// every other job has been submitted, so they wait while job 0 runs and are admitted together.
Outcome run_together(BatchScheduler& s, const std::vector<Job>& jobs) {
  Outcome out;
  out.results.resize(jobs.size());
  out.errors.resize(jobs.size());
  std::mutex mu;
  std::atomic<bool> holding{false};
  std::atomic<size_t> entered{0};
  const auto run = [&](size_t i) {
    const TokenCallback on_token = [&, i](int32_t id) {
      if (i == 0 && !holding.exchange(true)) {
        while (entered.load() < jobs.size()) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // their generate() calls enqueue
      }
      {
        std::lock_guard lock(mu);
        out.order.push_back(i);
      }
      return jobs[i].on_token && jobs[i].on_token(id);
    };
    ++entered;
    auto r = s.generate(jobs[i].prompt, jobs[i].params, on_token);
    if (r.ok()) {
      out.results[i] = *r;
    } else {
      out.errors[i] = r.error().message;
    }
    if (i == 0) holding = true;  // ended without a callback: nothing to hold
  };
  std::vector<std::thread> threads;
  threads.emplace_back(run, 0);
  while (!holding.load()) std::this_thread::yield();
  for (size_t i = 1; i < jobs.size(); ++i) threads.emplace_back(run, i);
  for (auto& t : threads) t.join();
  return out;
}

const Generation& ok(const Outcome& out, size_t i) {
  REQUIRE_MESSAGE(out.errors[i].empty(), out.errors[i]);
  return out.results[i];
}

const std::string& error_of(const Outcome& out, size_t i) {
  REQUIRE_FALSE(out.errors[i].empty());
  return out.errors[i];
}

}  // namespace

TEST_CASE("concurrent requests share steps and each gets exactly what it gets alone") {
  const auto golden = golden_fp8();
  const int64_t n = int64_t(golden.decode_ids.size());
  std::vector<Job> jobs;
  for (size_t k = 0; k < 6; ++k) jobs.push_back({prompt_of(7 * k, 60 - 9 * k), greedy(n)});
  jobs.push_back({{golden.prompt[5]}, greedy(12)});  // a one-token prompt: forwarded alone
  jobs.push_back({prompt_of(3, 57), seeded(16, 77)});
  jobs.push_back({prompt_of(11, 41), seeded(16, 78)});

  auto s = scheduler(4096);
  const Outcome out = run_together(*s, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    CAPTURE(i);
    const Generation& g = ok(out, i);
    const Generation ref = alone(jobs[i].prompt, jobs[i].params);
    CHECK(g.tokens == ref.tokens);
    CHECK(g.prompt_tokens == int64_t(jobs[i].prompt.size()));
    CHECK(g.cached_tokens == 0);
    CHECK(g.hit_eos == ref.hit_eos);
  }
  CHECK(ok(out, 0).tokens == golden.decode_ids);
  // Job 0 was still decoding when the others were admitted: their ids came between its ids.
  const auto last_of_0 = std::find(out.order.rbegin(), out.order.rend(), size_t(0));
  CHECK(std::any_of(last_of_0, out.order.rend(), [](size_t j) { return j != 0; }));
}

TEST_CASE("slots keep finished conversations: an extension prefills only its new ids") {
  const auto golden = golden_fp8();
  auto s = scheduler(4096);
  Generator ref(load_tiny(), cpu::LatentFormat::fp8, kContext);  // runs conversation A alone
  const auto both = [&](const std::vector<int32_t>& prompt, int64_t max_tokens) {
    auto a = s->generate(prompt, greedy(max_tokens), {});
    auto b = ref.generate(prompt, greedy(max_tokens), {});
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->tokens == b->tokens);
    CHECK(a->cached_tokens == b->cached_tokens);
    return *a;
  };

  const std::vector<int32_t> a1(golden.prompt.begin(), golden.prompt.begin() + 30);
  CHECK(both(a1, 4).cached_tokens == 0);
  // Extends a1's prompt: the 30 ids are reused, and the output is the cold golden one.
  const Generation g2 = both(golden.prompt, int64_t(golden.decode_ids.size()));
  CHECK(g2.cached_tokens == 30);
  CHECK(g2.tokens == golden.decode_ids);
  // The next turn: prompt, reply and new ids; all but the reply's last id are served from the slot.
  std::vector<int32_t> a3 = golden.prompt;
  a3.insert(a3.end(), g2.tokens.begin(), g2.tokens.end());
  for (int32_t id : {5, 6, 7}) a3.push_back(id);
  const Generation g3 = both(a3, 6);
  CHECK(g3.cached_tokens == int64_t(golden.prompt.size() + g2.tokens.size()) - 1);

  // Another conversation in between takes another slot ...
  const std::vector<int32_t> b1 = prompt_of(13, 50);
  auto gb = s->generate(b1, greedy(8), {});
  REQUIRE(gb.ok());
  CHECK(gb->tokens == alone(b1, greedy(8)).tokens);
  // ... and A's slot still serves A's next turn.
  std::vector<int32_t> a4 = a3;
  a4.insert(a4.end(), g3.tokens.begin(), g3.tokens.end());
  for (int32_t id : {8, 9}) a4.push_back(id);
  CHECK(both(a4, 6).cached_tokens == int64_t(a3.size() + g3.tokens.size()) - 1);

  // Diverging inside the cached prompt: cut back there, same output as a cold run.
  std::vector<int32_t> other(golden.prompt.begin(), golden.prompt.begin() + 40);
  for (int32_t id : {7, 8, 9, 10}) other.push_back(id);
  auto warm = s->generate(other, greedy(8), {});
  REQUIRE(warm.ok());
  CHECK(warm->cached_tokens == 40);
  CHECK(warm->tokens == alone(other, greedy(8)).tokens);
}

TEST_CASE("a request copies the shared prompt prefix of a running request") {
  const auto golden = golden_fp8();
  // Job 0 holds the engine after its prefill; job 1, sharing its first 50 ids, arrives meanwhile.
  std::vector<int32_t> shared(golden.prompt.begin(), golden.prompt.begin() + 50);
  for (int32_t id : {11, 12, 13, 14}) shared.push_back(id);
  std::vector<Job> jobs = {{golden.prompt, greedy(int64_t(golden.decode_ids.size()))}, {shared, greedy(12)}};
  auto s = scheduler(4096);
  const Outcome out = run_together(*s, jobs);
  CHECK(ok(out, 0).tokens == golden.decode_ids);
  CHECK(ok(out, 1).cached_tokens == 50);
  CHECK(ok(out, 1).tokens == alone(shared, greedy(12)).tokens);
}

TEST_CASE("a pool too small for every request preempts and recomputes, changing no output") {
  // Three pages: two requests growing past 64 tokens each need two. The older one's next page
  // preempts the newer, which is recomputed (its generated ids one at a time) once pages free up.
  std::vector<Job> jobs = {{prompt_of(0, 30), greedy(60)},
                           {prompt_of(9, 60), greedy(60)},
                           {prompt_of(21, 45), seeded(60, 5)},
                           {prompt_of(33, 20), greedy(60)}};
  auto s = scheduler(3 * kPageTokens);
  const Outcome out = run_together(*s, jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    CAPTURE(i);
    const Generation& g = ok(out, i);
    const Generation ref = alone(jobs[i].prompt, jobs[i].params);
    CHECK(g.tokens == ref.tokens);
    CHECK(g.hit_eos == ref.hit_eos);
  }
}

TEST_CASE("a request too big for the pool, or with a bad id, fails alone; the others finish") {
  const auto golden = golden_fp8();
  std::vector<int32_t> huge_prompt;
  for (int i = 0; i < 150; ++i) huge_prompt.push_back(3 + i % 90);
  std::vector<Job> jobs = {{golden.prompt, greedy(100)},  // grows past the two pages
                           {huge_prompt, greedy(4)},      // does not fit at all
                           {{3, 4, 99999}, greedy(4)},
                           {prompt_of(17, 20), greedy(10)}};
  auto s = scheduler(2 * kPageTokens);
  const Outcome out = run_together(*s, jobs);
  CHECK(error_of(out, 0).find("more than the pool's 128") != std::string::npos);
  CHECK(error_of(out, 1).find("150 tokens") != std::string::npos);
  CHECK(error_of(out, 2).find("99999") != std::string::npos);
  CHECK(ok(out, 3).tokens == alone(jobs[3].prompt, greedy(10)).tokens);
  // Still serving, and the prompt bounds hold as in the Generator.
  CHECK(s->generate(golden.prompt, greedy(3), {}).ok());
  CHECK_FALSE(s->generate({}, greedy(3), {}).ok());
  CHECK_FALSE(s->generate(std::vector<int32_t>(kContext + 1, 3), greedy(3), {}).ok());
}

TEST_CASE("a callback that stops or throws ends only its own request") {
  const auto golden = golden_fp8();
  int calls = 0;
  std::vector<Job> jobs = {
      {golden.prompt, greedy(20), [&](int32_t) { return ++calls == 3; }},
      {prompt_of(10, 50), greedy(20),
       [](int32_t) -> bool { throw std::runtime_error("sink closed"); }},
      {prompt_of(20, 40), greedy(20)}};
  auto s = scheduler(4096);
  const Outcome out = run_together(*s, jobs);
  CHECK(ok(out, 0).tokens == std::vector<int32_t>(golden.decode_ids.begin(), golden.decode_ids.begin() + 3));
  CHECK(error_of(out, 1).find("sink closed") != std::string::npos);
  CHECK(ok(out, 2).tokens == alone(jobs[2].prompt, greedy(20)).tokens);
}

namespace {

// The golden fixture's logits of each greedy step (prefill, then 20 decode steps), from the NumPy
// reference: log-softmax in double here is the independent computation of each log-probability.
std::vector<std::vector<double>> golden_log_softmax() {
  const dsa::test::Golden g = dsa::test::Golden::load("fp8");
  const auto prefill = g.array("prefill_logits"), decode = g.array("decode_logits");
  const size_t vocab = prefill.size();
  std::vector<std::vector<double>> rows;
  for (size_t step = 0; step <= decode.size() / vocab; ++step) {
    const float* l = step == 0 ? prefill.data() : decode.data() + (step - 1) * vocab;
    double mx = -1e300, sum = 0;
    for (size_t i = 0; i < vocab; ++i) mx = std::max(mx, double(l[i]));
    for (size_t i = 0; i < vocab; ++i) sum += std::exp(double(l[i]) - mx);
    std::vector<double> row(vocab);
    for (size_t i = 0; i < vocab; ++i) row[i] = double(l[i]) - mx - std::log(sum);
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

TEST_CASE("logprobs: each generated token's log-probability and the most likely ids, as the reference gives them") {
  const auto golden = golden_fp8();
  GenerateParams p = greedy(int64_t(golden.decode_ids.size()));
  p.top_logprobs = 5;
  auto s = scheduler(4096);
  const Outcome out = run_together(*s, {{golden.prompt, p}});
  const Generation& g = ok(out, 0);
  REQUIRE(g.tokens == golden.decode_ids);
  REQUIRE(g.logprobs.size() == g.tokens.size());
  const auto want = golden_log_softmax();
  REQUIRE(want.size() == g.tokens.size());
  for (size_t step = 0; step < g.tokens.size(); ++step) {
    CAPTURE(step);
    const StepLogprobs& lp = g.logprobs[step];
    // The engine's logits are within 1e-3 of the reference's (test_model_golden), so are these.
    CHECK(std::abs(lp.chosen - want[step][size_t(g.tokens[step])]) < 2e-3);
    REQUIRE(lp.top.size() == 5);
    CHECK(lp.top[0].id == g.tokens[step]);  // greedy
    for (size_t i = 0; i < lp.top.size(); ++i) {
      CHECK(std::abs(lp.top[i].logprob - want[step][size_t(lp.top[i].id)]) < 2e-3);
      if (i > 0) CHECK(lp.top[i].logprob <= lp.top[i - 1].logprob);
    }
    // Nothing outside the list is more likely than its last entry (beyond the tolerance).
    for (size_t id = 0; id < want[step].size(); ++id) {
      const bool listed = std::any_of(lp.top.begin(), lp.top.end(), [&](const TokenLogprob& t) { return t.id == int32_t(id); });
      if (!listed) CHECK(want[step][id] < lp.top.back().logprob + 2e-3);
    }
  }
  // The single-sequence reference loop reports the same values.
  const Generation ref = alone(golden.prompt, p);
  REQUIRE(ref.logprobs.size() == g.logprobs.size());
  for (size_t step = 0; step < g.logprobs.size(); ++step) CHECK(ref.logprobs[step].chosen == g.logprobs[step].chosen);
  // Off by default.
  CHECK(alone(golden.prompt, greedy(3)).logprobs.empty());
}
