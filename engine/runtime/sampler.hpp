// Sampler: picks the next token from fp32 logits [vocab]. Temperature 0 is greedy (argmax, ties
// to the lower id); otherwise logits / T, then top-k, then top-p (nucleus), then a draw from a
// seeded generator, so a given seed reproduces a run. No token id is ever masked out by the sampler.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace dsa {

struct SamplerOptions {
  double temperature = 0.0;
  double top_p = 1.0;  // keep the smallest set of most likely tokens whose mass reaches top_p
  int top_k = 0;       // 0 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions opt_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // candidate ids, most likely first
  std::vector<double> probs_;
};

}  // namespace dsa
