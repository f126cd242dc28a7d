// Sampling math (see sampling.hpp).
#include "kernels/cpu/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/cpu/topk.hpp"

namespace dsa::cpu {

void softmax(const float* x, int64_t n, float* y) {
  if (n <= 0) return;
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = std::exp(x[i] - m);
    sum += y[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
  return best < 0 ? 0 : best;
}

void top_k_mask(float* logits, int64_t n, int64_t k) {
  if (k <= 0 || k >= n) return;
  thread_local std::vector<int32_t> keep;
  keep.resize(static_cast<size_t>(k));
  topk_positions(logits, n, k, keep.data());
  int64_t next = 0;  // keep is ascending
  for (int64_t i = 0; i < n; ++i) {
    if (next < k && keep[next] == i) {
      ++next;
    } else {
      logits[i] = -std::numeric_limits<float>::infinity();
    }
  }
}

void top_p_mask(float* probs, int64_t n, float top_p) {
  if (top_p >= 1.0f || n <= 0) return;
  thread_local std::vector<int32_t> order;
  order.resize(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return probs[a] > probs[b]; });
  double cum = 0.0;
  int64_t kept = 0;
  while (kept < n && (kept == 0 || cum < double(top_p))) cum += probs[order[kept++]];
  for (int64_t i = kept; i < n; ++i) probs[order[i]] = 0.0f;
  const float inv = cum > 0.0 ? float(1.0 / cum) : 0.0f;
  for (int64_t i = 0; i < kept; ++i) probs[order[i]] *= inv;
}

int64_t sample_from_probs(const float* probs, int64_t n, float u) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += probs[i];
  const double target = double(u) * total;
  double run = 0.0;
  int64_t last = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (probs[i] <= 0.0f) continue;
    run += probs[i];
    last = i;
    if (run > target) return i;
  }
  return last;  // u * total rounded up to the total
}

}  // namespace dsa::cpu
