// Sampler: picks the next token from fp32 logits [vocab]. Temperature 0 is greedy (argmax, ties
// to the lower id); otherwise logits / T, then top-k, then top-p (nucleus), then a draw from a
// seeded generator, so a given seed reproduces a run. No token id is ever masked out by the sampler.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

struct SamplerOptions {
  double temperature = 0.0;
  double top_p = 1.0;  // keep the smallest set of most likely tokens whose mass reaches top_p
  int top_k = 0;       // 0 = off
  uint64_t seed = 0;
};

// One generated position's log-probabilities under the model (log-softmax of the logits the sampler
// saw, masked ids at -inf, before temperature or truncation): the chosen id's, and the n most likely
// ids, most likely first (equal logits: lower id first).
struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};
struct StepLogprobs {
  float chosen = 0;
  std::vector<TokenLogprob> top;
};
StepLogprobs step_logprobs(std::span<const float> logits, int32_t chosen, int n_top);

// Whether some id can be drawn: a logit above -inf (masked ids are -inf, NaN is never drawn).
bool has_candidate(std::span<const float> logits);
// The error of output token `index` (from 0) when has_candidate is false: a forward that gave NaN
// or -inf everywhere comes from weights holding NaN or Inf, not from the prompt.
Error no_candidate_error(int64_t index);

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  int32_t sample(std::span<const float> logits);

 private:
  // Orders keys_ (likelihood keys of the candidates) most likely first until the running weight
  // reaches target; returns the prefix's length, or 0 when every key is ordered short of it. The
  // weights walked are left in probs_, their sum in mass.
  size_t likely_prefix(std::span<const float> logits, float max_logit, double target, double& mass);

  SamplerOptions opt_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // candidate ids, most likely first
  std::vector<double> probs_;
  std::vector<uint64_t> keys_;
};

}  // namespace dsa
