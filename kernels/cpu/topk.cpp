// Top-k selection (see topk.hpp): nth_element over 64-bit keys that order by score, then by lower
// position, so the selection is O(n) and deterministic. Long rows (the indexer's at long contexts)
// first narrow the candidates: a threshold that about 2k + 16 * kStride keys reach is read off a
// strided sample, and only the keys at or above it go to nth_element (the pass that finds them
// compares 16 scores at a time with AVX-512). When fewer than k reach it (an unlucky sample), every
// key does; the result is the same either way.
#include "kernels/cpu/topk.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/cpu/check.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/simd.hpp"

namespace dsa::cpu {
namespace {

// Monotone map of a float to uint32 (NaN lowest, below -inf).
inline uint32_t order_key(float f) {
  if (std::isnan(f)) return 0;
  const uint32_t b = std::bit_cast<uint32_t>(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

constexpr int64_t kSampledMinRow = 4096;
constexpr int64_t kStride = 64;  // one key in kStride sampled
constexpr int64_t kParts = 8;    // ranges of the threshold pass

// Appends to out the positions i in [i0, i1) with order_key(scores[i]) >= threshold, in order.
void positions_reaching(const float* scores, int64_t i0, int64_t i1, uint32_t threshold, std::vector<uint32_t>& out) {
  int64_t i = i0;
#if defined(__AVX512F__)
  // order_key in 16 lanes: x ^ (x < 0 ? all ones : the sign bit), NaN as 0; few lanes reach the
  // threshold, so they are picked out of the mask one by one.
  const __m512i sign = _mm512_set1_epi32(int(0x80000000u)), limit = _mm512_set1_epi32(int(threshold));
  for (; i + 16 <= i1; i += 16) {
    const __m512 v = _mm512_loadu_ps(scores + i);
    const __m512i b = _mm512_castps_si512(v);
    const __m512i key = _mm512_maskz_xor_epi32(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), b,
                                               _mm512_or_si512(_mm512_srai_epi32(b, 31), sign));
    for (uint32_t m = _mm512_cmpge_epu32_mask(key, limit); m != 0; m &= m - 1)
      out.push_back(uint32_t(i + std::countr_zero(m)));
  }
#endif
  for (; i < i1; ++i)
    if (order_key(scores[i]) >= threshold) out.push_back(uint32_t(i));
}

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
    thread_local std::vector<std::vector<uint32_t>> parts(kParts);
    auto& local = parts;  // the workers fill the calling thread's buffers
    parallel_for(kParts, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        local[p].clear();
        positions_reaching(scores, p * n / kParts, (p + 1) * n / kParts, threshold, local[p]);
      }
    });
    for (const auto& part : parts)
      for (const uint32_t i : part) keys.push_back(full_key(i));
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
