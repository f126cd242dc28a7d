// Sampler (sampler.hpp). Probabilities are computed in double over the candidates only, after
// subtracting the largest logit, so -inf logits (ids masked by the caller) get probability 0.
#include "engine/runtime/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "kernels/cpu/parallel.hpp"

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

// The likelihood order as one integer: the logit's bits made order-preserving above, the id's
// complement below, so a larger key is more likely and equal logits put the lower id first.
uint64_t likelihood_key(std::span<const float> logits, int32_t id) {
  float v = clean(logits[size_t(id)]);
  if (v == 0.0f) v = 0.0f;  // -0 and +0 are equal logits
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (uint64_t(bits) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(id));
}

int32_t key_id(uint64_t key) { return int32_t(0xFFFFFFFFu - uint32_t(key)); }

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

size_t Sampler::likely_prefix(std::span<const float> logits, float max_logit, double target, double& mass) {
  // Ordered in growing chunks (each the largest keys left, then sorted), since the prefix is
  // usually short: the keys past it are only partitioned.
  const double inv_t = 1.0 / opt_.temperature;
  mass = 0.0;
  probs_.clear();
  size_t done = 0;
  for (size_t chunk = 1024; done < keys_.size(); chunk *= 4) {
    const auto first = keys_.begin() + std::ptrdiff_t(done);
    const size_t end = std::min(keys_.size(), done + chunk);
    const auto last = keys_.begin() + std::ptrdiff_t(end);
    std::nth_element(first, last - 1, keys_.end(), std::greater<>());
    std::sort(first, last, std::greater<>());
    for (; done < end; ++done) {
      mass += probs_.emplace_back(
          std::exp((double(clean(logits[size_t(key_id(keys_[done]))])) - double(max_logit)) * inv_t));
      if (mass >= target) return done + 1;
    }
  }
  return 0;
}

bool has_candidate(std::span<const float> logits) {
  return std::any_of(logits.begin(), logits.end(), [](float v) { return v > -std::numeric_limits<float>::infinity(); });
}

Error no_candidate_error(int64_t index) {
  return make_error("every logit of output token " + std::to_string(index) +
                    " is NaN or -inf; the checkpoint's weights may hold NaN or Inf values");
}

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

  // Candidates: every id in id order, or the top-k in likelihood order when top-k is set.
  order_.resize(size_t(n));
  for (int32_t i = 0; i < n; ++i) order_[size_t(i)] = i;
  const bool cut_k = opt_.top_k > 0 && opt_.top_k < n;
  const bool cut_p = opt_.top_p < 1.0;
  size_t n_cand = order_.size();
  const MoreLikely more{logits};
  if (cut_k) {
    n_cand = size_t(opt_.top_k);
    std::partial_sort(order_.begin(), order_.begin() + std::ptrdiff_t(n_cand), order_.end(), more);
  }

  float max_logit = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < n_cand; ++i) max_logit = std::max(max_logit, clean(logits[size_t(order_[i])]));
  if (max_logit == -std::numeric_limits<float>::infinity()) return order_[0];
  const double inv_t = 1.0 / opt_.temperature;
  // probs_[i] = the weight of order_[i], for the first `count` candidates; returns their sum (in
  // order). A whole vocabulary's exponentials are computed on the threads.
  const auto weigh = [&](size_t count) {
    probs_.resize(count);
    cpu::parallel_for(
        int64_t(count),
        [&](int64_t begin, int64_t end) {
          for (auto i = size_t(begin); i < size_t(end); ++i)
            probs_[i] = std::exp((double(clean(logits[size_t(order_[i])])) - double(max_logit)) * inv_t);
        },
        16384);
    double sum = 0.0;
    for (size_t i = 0; i < count; ++i) sum += probs_[i];
    return sum;
  };
  double total = weigh(n_cand);
  if (cut_p) {
    // The smallest prefix (in likelihood order) whose mass reaches top_p; at least one token.
    const double top_p = std::max(opt_.top_p, 0.0);
    const double target = top_p * total;
    double mass = 0.0;
    size_t keep = 0;
    if (cut_k) {  // the top-k, already in likelihood order and weighed
      while (keep < n_cand) {
        mass += probs_[keep++];
        if (mass >= target) break;
      }
    } else {
      // Only the heavy ids are ordered. Each id of the prefix weighs at least (1 - top_p) * total / n:
      // were its last id lighter, that id and every one after it would weigh less than that in all,
      // yet they hold more than 1 - top_p of the mass. The ids weighing at least half the bound
      // lead the likelihood order (weights rise with logits), so the prefix is among them unless
      // rounding says otherwise, and then every id is ordered.
      const double floor = 0.5 * (1.0 - top_p) * total / double(n_cand);
      keys_.clear();
      for (size_t i = 0; i < n_cand; ++i)
        if (probs_[i] >= floor) keys_.push_back(likelihood_key(logits, order_[i]));
      keep = likely_prefix(logits, max_logit, target, mass);
      if (keep == 0) {
        keys_.clear();
        for (int32_t i = 0; i < n; ++i) keys_.push_back(likelihood_key(logits, i));
        keep = likely_prefix(logits, max_logit, target, mass);
        if (keep == 0) keep = keys_.size();  // rounding: every id, all ordered and weighed by now
      }
      for (size_t i = 0; i < keep; ++i) order_[i] = key_id(keys_[i]);
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
