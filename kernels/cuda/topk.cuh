// Device pieces shared by the two top-k forms (topk.cu: a block per row; topk_split.cu: each row
// over several blocks): the order-preserving key, the digit histogram, the choice of the digit
// holding the k-th largest, and the ordered pass that writes the winners. Internal to kernels/cuda.
#pragma once
#include <cstdint>

#include "kernels/cuda/device.cuh"

namespace dsa::cuda::dev {

// Monotone map of a float to uint32 (NaN lowest, +0 above -0), as the CPU's order_key.
__device__ __forceinline__ uint32_t order_key(float f) {
  if (isnan(f)) return 0;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Adds the keys of [0, count) that match `prefix` under `mask` to the histogram of the digit
// (key >> shift) & digit_mask; key_at(i) gives entry i's key. Strided over the block's threads.
template <class KeyAt>
__device__ __forceinline__ void add_histogram(int64_t count, KeyAt key_at, uint32_t prefix, uint32_t mask, int shift,
                                              uint32_t digit_mask, uint32_t* hist) {
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const uint32_t key = key_at(i);
    if ((key & mask) == prefix) {
      // One atomic per distinct bin of the warp: tied scores would otherwise serialise on a bin.
      const uint32_t bin = (key >> shift) & digit_mask;
      const unsigned same = __match_any_sync(__activemask(), bin);
      if ((threadIdx.x & 31) == unsigned(__ffs(same) - 1)) atomicAdd(&hist[bin], unsigned(__popc(same)));
    }
  }
}

// The digit of a 256-bin histogram that holds the `remaining`-th largest key, counting from the
// top: called by the 32 lanes of one warp; the lane that finds it writes the digit, how many of
// the top k its bin still owes (`remaining` minus the bins above) and the bin's count.
__device__ __forceinline__ void select_digit(const uint32_t* hist, uint32_t remaining, uint32_t* sel_digit,
                                             uint32_t* sel_remaining, uint32_t* sel_count) {
  const int lane = threadIdx.x & 31;
  // Lane l holds bins 255 - 8l .. 248 - 8l (descending); suffix counts from the top.
  uint32_t c[8], sum = 0;
  for (int b = 0; b < 8; ++b) sum += (c[b] = hist[255 - 8 * lane - b]);
  uint32_t incl = sum;  // count of bins from the top down to this lane's last
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t t = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += t;
  }
  const uint32_t above = incl - sum;
  if (above < remaining && incl >= remaining) {  // exactly one lane
    uint32_t acc = above;
    for (int b = 0; b < 8; ++b) {
      if (acc + c[b] >= remaining) {
        *sel_digit = uint32_t(255 - 8 * lane - b);
        *sel_remaining = remaining - acc;
        *sel_count = c[b];
        break;
      }
      acc += c[b];
    }
  }
}

// Ordered pass over the positions [lo, hi) of row s: an entry above `threshold` is taken; an entry
// equal to it is taken while fewer than `remaining` equal ones precede it in the whole row. Its
// slot in o = taken entries before it. gt_base / eq_base: entries above / equal to the threshold
// before lo. Each warp of the block walks a contiguous segment twice: first counting, then (after
// one block barrier and a scan of the counts over the warps) ranking its entries with ballots.
// warp_gt, warp_eq: shared arrays of one entry per warp. Called by every thread of the block.
__device__ __forceinline__ void ordered_write(const float* s, int64_t lo, int64_t hi, uint32_t threshold,
                                              uint32_t remaining, uint32_t gt_base, uint32_t eq_base, int32_t* o,
                                              uint32_t* warp_gt, uint32_t* warp_eq) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  const int64_t seg = (hi - lo + n_warps - 1) / n_warps;
  const int64_t w_lo = min(hi, lo + int64_t(warp) * seg), w_hi = min(hi, w_lo + seg);
  uint32_t gt_n = 0, eq_n = 0;
  for (int64_t i = w_lo + lane; i < w_hi; i += 32) {
    const uint32_t key = order_key(s[i]);
    gt_n += key > threshold;
    eq_n += key == threshold;
  }
  gt_n = warp_sum(gt_n);
  eq_n = warp_sum(eq_n);
  if (lane == 0) {
    warp_gt[warp] = gt_n;
    warp_eq[warp] = eq_n;
  }
  __syncthreads();
  uint32_t gt_before = gt_base, eq_before = eq_base;
  for (int w = 0; w < warp; ++w) {
    gt_before += warp_gt[w];
    eq_before += warp_eq[w];
  }
  const unsigned below = (1u << lane) - 1u;
  for (int64_t b = w_lo; b < w_hi; b += 32) {
    const int64_t i = b + lane;
    uint32_t key = 0;
    bool gt = false, eq = false;
    if (i < w_hi) {
      key = order_key(s[i]);
      gt = key > threshold;
      eq = key == threshold;
    }
    const unsigned gt_mask = __ballot_sync(0xffffffffu, gt), eq_mask = __ballot_sync(0xffffffffu, eq);
    const uint32_t gt_rank = gt_before + uint32_t(__popc(gt_mask & below));
    const uint32_t eq_rank = eq_before + uint32_t(__popc(eq_mask & below));
    if (gt || (eq && eq_rank < remaining)) o[gt_rank + min(eq_rank, remaining)] = int32_t(i);
    gt_before += uint32_t(__popc(gt_mask));
    eq_before += uint32_t(__popc(eq_mask));
  }
}

}  // namespace dsa::cuda::dev
