// Top-k selection (see topk.hpp): nth_element over 64-bit keys that order by score, then by lower
// position, so the selection is O(n) and deterministic. Long rows (the indexer's at long contexts)
// first narrow the candidates: a threshold that about 2k + 16 * kStride keys reach is read off a
// strided sample, and only the keys at or above it go to nth_element. When fewer than k reach it
// (an unlucky sample), every key does; the result is the same either way.
#include "kernels/cpu/topk.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/cpu/check.hpp"
#include "kernels/cpu/parallel.hpp"

namespace dsa::cpu {
namespace {

// Monotone map of a float to uint32 (NaN lowest, below -inf).
inline uint32_t order_key(float f) {
  if (std::isnan(f)) return 0;
  const uint32_t b = std::bit_cast<uint32_t>(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

constexpr int64_t kSampledMinRow = 4096;
constexpr int64_t kStride = 16;  // one key in kStride sampled
constexpr int64_t kParts = 8;    // ranges of the threshold pass

}  // namespace

void topk_positions(const float* scores, int64_t n, int64_t k, int32_t* out) {
  DSA_KERNEL_REQUIRE(k <= n, "topk_positions needs k <= n");
  if (k <= 0) return;
  if (k == n) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(i);
    return;
  }
  const auto full_key = [&](int64_t i) {
    return (uint64_t(order_key(scores[i])) << 32) | uint64_t(0xffffffffu - uint32_t(i));
  };
  thread_local std::vector<uint64_t> keys;
  keys.clear();
  if (n >= kSampledMinRow) {
    thread_local std::vector<uint32_t> sample;
    sample.clear();
    for (int64_t i = 0; i < n; i += kStride) sample.push_back(order_key(scores[i]));
    const int64_t rank = std::min<int64_t>(int64_t(sample.size()), 2 * k / kStride + 16);
    std::nth_element(sample.begin(), sample.begin() + (rank - 1), sample.end(), std::greater<uint32_t>());
    const uint32_t threshold = sample[size_t(rank - 1)];
    // The pass over the row, in kParts ranges on the pool's threads, then joined in order.
    thread_local std::vector<std::vector<uint64_t>> parts(kParts);
    auto& local = parts;  // the workers fill the calling thread's buffers
    parallel_for(kParts, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        local[p].clear();
        for (int64_t i = p * n / kParts; i < (p + 1) * n / kParts; ++i)
          if (order_key(scores[i]) >= threshold) local[p].push_back(full_key(i));
      }
    });
    for (const auto& part : parts) keys.insert(keys.end(), part.begin(), part.end());
    if (int64_t(keys.size()) < k) keys.clear();
  }
  if (keys.empty()) {
    for (int64_t i = 0; i < n; ++i) keys.push_back(full_key(i));
  }
  std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.end(), std::greater<uint64_t>());
  for (int64_t i = 0; i < k; ++i) out[i] = static_cast<int32_t>(0xffffffffu - uint32_t(keys[i] & 0xffffffffu));
  std::sort(out, out + k);
}

}  // namespace dsa::cpu
