// Sampler (sampler.hpp). Probabilities are computed in double over the candidates only, after
// subtracting the largest logit, so -inf logits (ids masked by the caller) get probability 0.
#include "engine/runtime/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dsa {

namespace {

// NaN never wins and never gets mass: it reads as -inf.
float clean(float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; }

// Larger logit first; equal logits: lower id first (so greedy and top-k are deterministic).
struct MoreLikely {
  std::span<const float> logits;
  bool operator()(int32_t a, int32_t b) const {
    const float la = clean(logits[size_t(a)]), lb = clean(logits[size_t(b)]);
    return la > lb || (la == lb && a < b);
  }
};

}  // namespace

StepLogprobs step_logprobs(std::span<const float> logits, int32_t chosen, int n_top) {
  float top = -std::numeric_limits<float>::infinity();
  for (float v : logits) top = std::max(top, clean(v));
  double sum = 0;
  for (float v : logits) sum += std::exp(double(clean(v)) - double(top));
  const double log_z = double(top) + std::log(sum);
  const auto logprob = [&](int32_t id) { return float(double(clean(logits[size_t(id)])) - log_z); };

  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  const auto n = std::min(ids.size(), size_t(std::max(n_top, 0)));
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(n), ids.end(), MoreLikely{logits});
  StepLogprobs out{.chosen = logprob(chosen), .top = {}};
  for (size_t i = 0; i < n; ++i) out.top.push_back({ids[i], logprob(ids[i])});
  return out;
}

Sampler::Sampler(const SamplerOptions& options) : opt_(options), rng_(options.seed) {}

int32_t Sampler::sample(std::span<const float> logits) {
  const int32_t n = static_cast<int32_t>(logits.size());
  if (n == 0) return 0;
  if (opt_.temperature <= 0.0 || opt_.top_k == 1) {
    int32_t best = 0;
    float best_v = clean(logits[0]);
    for (int32_t i = 1; i < n; ++i) {
      const float v = clean(logits[size_t(i)]);
      if (v > best_v) best = i, best_v = v;  // strict: ties keep the lower id
    }
    return best;
  }

  // Candidates, most likely first: all ids, cut to top-k when set. Without top-k or top-p the
  // order does not matter and no sort is needed.
  order_.resize(size_t(n));
  for (int32_t i = 0; i < n; ++i) order_[size_t(i)] = i;
  const bool cut_k = opt_.top_k > 0 && opt_.top_k < n;
  const bool cut_p = opt_.top_p < 1.0;
  size_t n_cand = order_.size();
  const MoreLikely more{logits};
  if (cut_k) {
    n_cand = size_t(opt_.top_k);
    std::partial_sort(order_.begin(), order_.begin() + std::ptrdiff_t(n_cand), order_.end(), more);
  } else if (cut_p) {
    std::sort(order_.begin(), order_.end(), more);
  }

  float max_logit = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n_cand; ++i) max_logit = std::max(max_logit, clean(logits[size_t(order_[i])]));
  if (max_logit == -std::numeric_limits<float>::infinity()) return order_[0];
  const double inv_t = 1.0 / opt_.temperature;
  probs_.resize(n_cand);
  double total = 0.0;
  for (size_t i = 0; i < n_cand; ++i) {
    const float v = clean(logits[size_t(order_[i])]);
    probs_[i] = std::exp((double(v) - double(max_logit)) * inv_t);
    total += probs_[i];
  }
  if (cut_p) {
    // The smallest prefix (in likelihood order) whose mass reaches top_p; at least one token.
    const double target = std::max(opt_.top_p, 0.0) * total;
    double mass = 0.0;
    size_t keep = 0;
    while (keep < n_cand) {
      mass += probs_[keep++];
      if (mass >= target) break;
    }
    n_cand = keep;
    total = mass;
  }

  // A uniform draw in [0, 1) from the top 53 bits: the same sequence on every standard library.
  const double u = double(rng_() >> 11) * 0x1.0p-53;
  double r = u * total;
  for (size_t i = 0; i < n_cand; ++i) {
    r -= probs_[i];
    if (r < 0.0) return order_[i];
  }
  // Rounding left r >= 0 after the last step: the last candidate with mass.
  for (size_t i = n_cand; i-- > 0;)
    if (probs_[i] > 0.0) return order_[i];
  return order_[0];
}

}  // namespace dsa
