// The forward pass against the NumPy reference (tests/golden/reference_model.py) on the tiny FP8
// and BF16 checkpoints: per-layer hidden states, indexer top-k sets, prefill and decode logits.
//
// Tolerances. The reference sums in fp64 (and fp32 per 128-block in the FP8 GEMM) and the engine
// in fp32 in another order; wherever both round to bf16 (every linear output, norm, rope, attention
// output) a last-bit difference of the sum can flip one bf16 ulp (2^-8 relative) and propagate.
// Measured on these fixtures: layers 0-1 bit-exact, layer 2 one bf16 ulp (0.0039 at |h| ~ 8, rel
// 4.7e-4), logits (fp32 head, summation order only) within 3e-7, top-k sets identical, ids equal.
// The bounds allow one bf16 ulp of the largest hidden value and a few ulps on the logits.
#include <doctest/doctest.h>

#include <cstdio>

#include "golden.hpp"

namespace dsa::test {
namespace {

constexpr double kHiddenRel = 4e-3;  // max |engine - ref| / max |ref| per layer: 2^-8, one bf16 ulp
constexpr double kLogitAbs = 1e-3;   // logits O(1..10)
// Against transformers (see the test at the end): the latent's FP8 round trip (e4m3, 2^-4 relative
// per element) and ~10 bf16 roundings per layer that HF skips.
constexpr double kHfHiddenRel = 0.06;
constexpr double kHfLogitAbs = 0.2;

// Golden indexer scores of query t of the prefill, layer L: [t+1] valid.
std::span<const float> golden_scores(const Golden& g, int64_t layer, int64_t t, int64_t n_prompt) {
  return g.array("indexer_scores." + std::to_string(layer)).subspan(size_t(t * n_prompt), size_t(t + 1));
}

// Positions in one set and not the other must be near-ties in the golden scores: their score within
// `gap` (relative to the k-th best) of the k-th best. Returns the number of such flips; -1 when a
// difference is not a near-tie.
int near_tie_flips(const std::vector<int32_t>& mine, const std::vector<int32_t>& ref, std::span<const float> scores,
                   double gap) {
  if (mine.size() != ref.size()) return -1;
  const std::set<int32_t> a(mine.begin(), mine.end()), b(ref.begin(), ref.end());
  if (a == b) return 0;
  float kth = INFINITY;
  for (int32_t p : ref) kth = std::min(kth, scores[size_t(p)]);
  int flips = 0;
  for (int32_t p : a) {
    if (b.count(p)) continue;
    if (std::fabs(double(scores[size_t(p)]) - double(kth)) > gap * std::fabs(double(kth))) return -1;
    ++flips;
  }
  return flips;
}

void check_prefill(const std::string& fmt) {
  const Golden g = Golden::load(fmt);
  const auto prompt = g.ids("prompt");
  const int64_t n = static_cast<int64_t>(prompt.size());
  TinyRun run(fmt);
  ForwardTrace trace;
  REQUIRE(run.step(prompt, &trace).ok());
  const int64_t L = run.model->config().num_hidden_layers;

  for (int64_t layer = 0; layer < L; ++layer) {
    const Diff d = diff(trace.hidden[layer], g.array("hidden." + std::to_string(layer)));
    MESSAGE(fmt << " hidden." << layer << " max abs " << d.max_abs << " rel " << d.rel());
    CHECK(d.rel() < kHiddenRel);
  }
  const TopkSets ref = g.prefill_topk();
  int flips = 0;
  for (int64_t layer = 0; layer < L; ++layer) {
    for (int64_t t = 0; t < n; ++t) {
      const int f = near_tie_flips(trace.topk[layer][t], ref[layer][t], golden_scores(g, layer, t, n), 1e-2);
      CHECK_MESSAGE(f >= 0, fmt << " layer " << layer << " query " << t << ": top-k differs beyond a near-tie");
      flips += std::max(f, 0);
    }
  }
  MESSAGE(fmt << " prefill top-k near-tie flips: " << flips);
  CHECK(flips <= 4);
  const Diff dl = diff(run.logits, g.array("prefill_logits"));
  MESSAGE(fmt << " prefill logits max abs " << dl.max_abs << " rel " << dl.rel());
  CHECK(dl.max_abs < kLogitAbs);
  CHECK(argmax(run.logits) == g.ids("decode_ids")[0]);
}

// Greedy decode; with pinned selections when `pin` (the golden top-k of each step).
void check_decode(const std::string& fmt, bool pin) {
  const Golden g = Golden::load(fmt);
  const auto prompt = g.ids("prompt");
  const auto ids = g.ids("decode_ids");
  TinyRun run(fmt);
  const TopkSets prefill_sets = g.prefill_topk();
  ForwardTrace trace;
  if (pin) trace.forced_topk = &prefill_sets;
  REQUIRE(run.step(prompt, &trace).ok());
  const auto golden_logits = g.array("decode_logits");
  const size_t vocab = run.logits.size();
  double worst = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const TopkSets sets = g.decode_topk(i);
    ForwardTrace step_trace;
    if (pin) step_trace.forced_topk = &sets;
    const int32_t tok = ids[i];
    REQUIRE(run.step({&tok, 1}, &step_trace).ok());
    const Diff d = diff(run.logits, golden_logits.subspan(i * vocab, vocab));
    worst = std::max(worst, d.max_abs);
    CHECK_MESSAGE(argmax(run.logits) == ids[i + 1], fmt << " decode step " << i);
  }
  MESSAGE(fmt << std::string(pin ? " pinned" : "") << " decode logits max abs over 20 steps " << worst);
  CHECK(worst < kLogitAbs);
}

TEST_CASE("prefill matches the reference: hidden states, top-k sets, logits") {
  check_prefill("fp8");
  check_prefill("bf16");
}

TEST_CASE("20 greedy decode steps match the reference ids and logits") {
  check_decode("fp8", false);
  check_decode("bf16", false);
}

TEST_CASE("with the reference's selections pinned, decode logits match closely") {
  check_decode("fp8", true);
  check_decode("bf16", true);
}

// Against Hugging Face transformers' deepseek_v32, an independent implementation
// (tests/golden/hf_compare.py wrote golden_hf_bf16 from it: float32, no FP8 step, pinned to the
// reference's top-k sets, as the engine is here). The two differ by design where DeepSeek's
// reference rounds (bf16 after every op, the MLA latent through FP8): measured 2.9% of the largest
// hidden value in layer 0 and 0.095 on the logits (max |logit| 3.4). Tokens whose router choice is
// a near-tie in HF pick another expert on the slightest difference and are left out of the hidden
// comparison (hf_compare.py lists them), with the tokens that attend to them in later layers.
TEST_CASE("prefill matches Hugging Face transformers' deepseek_v32 within the FP8/bf16 rounding it skips") {
  const Golden ref = Golden::load("bf16");
  const Golden hf = Golden::load("hf_bf16");
  const auto prompt = ref.ids("prompt");
  REQUIRE(hf.ids("prompt") == prompt);
  const TopkSets sets = ref.prefill_topk();
  TinyRun run("bf16");
  ForwardTrace trace;
  trace.forced_topk = &sets;
  REQUIRE(run.step(prompt, &trace).ok());
  const int64_t L = run.model->config().num_hidden_layers, H = run.model->config().hidden_size;
  // Tokens left out: a router near-tie, and from then on every token whose attention reads one (a
  // flipped expert changes that token's output by far more than rounding, and its keys and values
  // in the next layers with it).
  std::set<int64_t> skip;
  for (int64_t layer = 0; layer < L; ++layer) {
    const std::set<int64_t> before = skip;
    for (int64_t t = 0; t < int64_t(prompt.size()); ++t)
      for (int32_t key : sets[size_t(layer)][size_t(t)])
        if (before.count(key)) skip.insert(t);
    for (const auto& t : hf.meta["router_near_ties"].value(std::to_string(layer), nlohmann::json::array()))
      skip.insert(t.get<int64_t>());
    const auto want = hf.array("hidden." + std::to_string(layer));
    double worst = 0, scale = 0;
    for (int64_t t = 0; t < int64_t(prompt.size()); ++t) {
      for (int64_t i = 0; i < H; ++i) {
        const double w = want[size_t(t * H + i)];
        scale = std::max(scale, std::fabs(w));
        if (!skip.count(t)) worst = std::max(worst, std::fabs(double(trace.hidden[layer][size_t(t * H + i)]) - w));
      }
    }
    MESSAGE("hf hidden." << layer << " rel " << worst / scale << " (" << prompt.size() - skip.size() << " tokens)");
    CHECK(worst / scale < kHfHiddenRel);
  }
  const Diff dl = diff(run.logits, hf.array("prefill_logits"));
  MESSAGE("hf prefill logits max abs " << dl.max_abs);
  CHECK(dl.max_abs < kHfLogitAbs);
  CHECK(argmax(run.logits) == argmax(hf.array("prefill_logits")));
}

}  // namespace
}  // namespace dsa::test
