// Top-k selection (see topk.hpp): nth_element over 64-bit keys that order by score, then by lower
// position, so the selection is O(n) and deterministic.
#include "kernels/cpu/topk.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/cpu/check.hpp"

namespace dsa::cpu {
namespace {

// Monotone map of a float to uint32 (NaN lowest, below -inf).
inline uint32_t order_key(float f) {
  if (std::isnan(f)) return 0;
  const uint32_t b = std::bit_cast<uint32_t>(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

}  // namespace

void topk_positions(const float* scores, int64_t n, int64_t k, int32_t* out) {
  DSA_KERNEL_REQUIRE(k <= n, "topk_positions needs k <= n");
  if (k <= 0) return;
  if (k == n) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(i);
    return;
  }
  thread_local std::vector<uint64_t> keys;
  keys.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    keys[i] = (uint64_t(order_key(scores[i])) << 32) | uint64_t(0xffffffffu - uint32_t(i));
  std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.end(), std::greater<uint64_t>());
  for (int64_t i = 0; i < k; ++i) out[i] = static_cast<int32_t>(0xffffffffu - uint32_t(keys[i] & 0xffffffffu));
  std::sort(out, out + k);
}

}  // namespace dsa::cpu
