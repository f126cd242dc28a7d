// Concurrent decode through the BatchScheduler (concurrency.hpp).
#include "cli/bench/concurrency.hpp"

#include <algorithm>
#include <chrono>
#include <latch>
#include <string>
#include <random>
#include <thread>

#include "engine/runtime/generator.hpp"
#include "engine/runtime/scheduler.hpp"

namespace dsa::cli {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kPromptTokens = 64;

Result<ConcurrentDecode> run_requests(BatchScheduler& s, int64_t batch, int64_t tokens, std::mt19937_64& rng) {
  const ModelConfig& cfg = s.model().config();
  const int32_t eos[1] = {int32_t(cfg.eos_token_id)};
  std::uniform_int_distribution<int32_t> id(3, int32_t(cfg.vocab_size - 1));
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch), std::vector<int32_t>(kPromptTokens));
  for (auto& p : prompts)
    for (int32_t& t : p) t = id(rng);

  std::vector<std::vector<Clock::time_point>> times(static_cast<size_t>(batch));  // each sampled id's
  std::vector<std::string> errors(static_cast<size_t>(batch));
  std::latch submit(batch);  // all requests enqueue together
  std::vector<std::thread> threads;
  for (size_t i = 0; i < size_t(batch); ++i) {
    threads.emplace_back([&, i] {
      submit.arrive_and_wait();
      GenerateParams p;
      p.max_tokens = tokens + 1;  // the first id closes the prefill
      p.masked_ids = eos;
      auto r = s.generate(prompts[i], p, [&, i](int32_t) {
        times[i].push_back(Clock::now());
        return false;
      });
      if (!r.ok()) errors[i] = r.error().message;
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors)
    if (!e.empty()) return make_error(e);

  // Aggregate decode rate in the steady state: from the last request's first id (every prefill
  // done) to the first request's last id (none finished), the ids sampled after the window opens,
  // over its length. Prefills and the tail where fewer requests remain stay out. If the requests
  // never all decoded at once (admission, preemption), the whole span from the earliest first id to
  // the latest last id is used instead.
  ConcurrentDecode out{.batch = batch, .prompt_tokens = kPromptTokens};
  Clock::time_point all_first = Clock::time_point::max(), all_last = Clock::time_point::min();
  Clock::time_point last_first = Clock::time_point::min(), first_last = Clock::time_point::max();
  for (const auto& t : times) {
    if (t.empty()) continue;
    out.tokens_decoded += int64_t(t.size()) - 1;
    all_first = std::min(all_first, t.front());
    all_last = std::max(all_last, t.back());
    last_first = std::max(last_first, t.front());
    first_last = std::min(first_last, t.back());
  }
  const auto count_in = [&](Clock::time_point a, Clock::time_point b) {
    int64_t n = 0;
    for (const auto& t : times)
      n += std::count_if(t.begin(), t.end(), [&](Clock::time_point x) { return x > a && x <= b; });
    return n;
  };
  const int64_t in_steady = first_last > last_first ? count_in(last_first, first_last) : 0;
  out.steady = in_steady > 0;
  const Clock::time_point a = out.steady ? last_first : all_first, b = out.steady ? first_last : all_last;
  out.tokens = out.steady ? in_steady : out.tokens_decoded;
  out.seconds = b > a ? std::chrono::duration<double>(b - a).count() : 0.0;
  out.tokens_per_s = out.seconds > 0 ? double(out.tokens) / out.seconds : 0;
  return out;
}

}  // namespace

Result<std::vector<ConcurrentDecode>> measure_concurrent_decode(const std::filesystem::path& dir, AttentionMode mode,
                                                                int64_t batch, int64_t tokens, Device device) {
  const int64_t context = kPromptTokens + tokens + 1;
  DSA_TRY(model, open_model(dir, OpenOptions{.attention = mode, .device = device, .context = context,
                                             .sequences = batch}));
  const ModelConfig& cfg = model->config();
  const cpu::LatentFormat fmt = default_latent_format(cfg);  // as LocalLlm runs
  // Room for every request at its full length plus the spare page per running request the
  // scheduler keeps free (as LocalLlm sizes its pool), so all of them run at once.
  const int64_t pages_each = (context + kPageTokens - 1) / kPageTokens + 1;
  BatchScheduler s(std::move(model), fmt,
                   SchedulerOptions{.max_context = context, .pool_tokens = batch * pages_each * kPageTokens,
                                    .n_slots = batch});
  std::mt19937_64 rng(1);
  std::vector<ConcurrentDecode> out;
  for (int64_t b : {int64_t(1), batch}) {
    if (auto warm = run_requests(s, b, 2, rng); !warm.ok()) return warm.error();
    DSA_TRY(line, run_requests(s, b, tokens, rng));
    out.push_back(line);
  }
  return out;
}

}  // namespace dsa::cli
