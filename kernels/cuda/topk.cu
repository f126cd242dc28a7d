// CUDA top-k (see topk.hpp).
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/topk.hpp"

namespace dsa::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr uint32_t kCandidates = 16384;  // 64 KB of shared memory

// Monotone map of a float to uint32 (NaN lowest), as the CPU's order_key.
__device__ __forceinline__ uint32_t order_key(float f) {
  if (isnan(f)) return 0;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Adds the keys of [0, count) that match `prefix` under `mask` to the 256-bin histogram of the
// byte at `shift`; key_at(i) gives entry i's key.
template <class KeyAt>
__device__ __forceinline__ void add_histogram(int64_t count, KeyAt key_at, uint32_t prefix, uint32_t mask, int shift,
                                              uint32_t* hist) {
  for (int64_t i = threadIdx.x; i < count; i += kThreads) {
    const uint32_t key = key_at(i);
    if ((key & mask) == prefix) {
      // One atomic per distinct bin of the warp: tied scores would otherwise serialise on a bin.
      const uint32_t bin = (key >> shift) & 255u;
      const unsigned same = __match_any_sync(__activemask(), bin);
      if ((threadIdx.x & 31) == unsigned(__ffs(same) - 1)) atomicAdd(&hist[bin], unsigned(__popc(same)));
    }
  }
}

// Shared memory (dynamic): up to kCandidates keys whose top byte is the k-th largest's, gathered
// after the first pass so the three later passes run on them instead of re-reading the row.
__global__ void __launch_bounds__(kThreads)
topk_kernel(const float* scores, int64_t ld_scores, int64_t n, const int32_t* n_valid, int64_t k, int32_t* out,
            int64_t ld_out) {
  extern __shared__ uint32_t candidates[];
  __shared__ uint32_t hist[256];
  __shared__ uint32_t warp_gt[kWarps], warp_eq[kWarps];
  __shared__ uint32_t sel_digit, sel_remaining, sel_count, n_candidates;
  const int64_t row = blockIdx.x;
  const float* s = scores + row * ld_scores;
  int32_t* o = out + row * ld_out;
  const int64_t nr = n_valid ? int64_t(n_valid[row]) : n;
  const int64_t kr = min(k, nr);
  for (int64_t i = kr + threadIdx.x; i < k; i += kThreads) o[i] = -1;
  if (kr <= 0) return;
  const int lane = threadIdx.x & 31;

  // Radix select, most significant byte first: after the passes, `prefix` is the key of the k-th
  // largest and `remaining` the number of entries equal to it that belong to the top k.
  uint32_t prefix = 0, mask = 0, remaining = uint32_t(kr);
  bool from_candidates = false;
  if (threadIdx.x == 0) n_candidates = 0;  // published by the first barrier below
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) hist[i] = 0;
    __syncthreads();
    if (from_candidates)
      add_histogram(n_candidates, [&](int64_t i) { return candidates[i]; }, prefix, mask, shift, hist);
    else
      add_histogram(nr, [&](int64_t i) { return order_key(s[i]); }, prefix, mask, shift, hist);
    __syncthreads();
    if (threadIdx.x < 32) {
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
            sel_digit = uint32_t(255 - 8 * lane - b);
            sel_remaining = remaining - acc;
            sel_count = c[b];
            break;
          }
          acc += c[b];
        }
      }
    }
    __syncthreads();
    prefix |= sel_digit << shift;
    mask |= 255u << shift;
    remaining = sel_remaining;
    if (shift == 24 && sel_count <= kCandidates) {
      // Gather the keys of the selected top byte (in any order: only their counts matter).
      for (int64_t i = threadIdx.x; i < nr; i += kThreads) {
        const uint32_t key = order_key(s[i]);
        const unsigned active = __activemask();
        const unsigned take = __ballot_sync(active, (key & mask) == prefix);
        if (take == 0) continue;
        const int leader = __ffs(take) - 1;
        uint32_t base = 0;
        if (lane == leader) base = atomicAdd(&n_candidates, unsigned(__popc(take)));
        base = __shfl_sync(active, base, leader);
        if ((key & mask) == prefix) candidates[base + __popc(take & ((1u << lane) - 1u))] = key;
      }
      from_candidates = true;
    }
    __syncthreads();
  }

  // Ordered pass: an entry above the threshold is taken; an entry equal to it is taken while fewer
  // than `remaining` equal ones precede it. Its slot = taken entries before it. Each warp walks a
  // contiguous segment of the row twice: first counting, then (after one scan of the counts over
  // the warps) ranking its entries with ballots, with no block-wide barrier per step.
  const int warp = threadIdx.x >> 5;
  const int64_t seg = (nr + kWarps - 1) / kWarps;
  const int64_t lo = min(nr, int64_t(warp) * seg), hi = min(nr, lo + seg);
  uint32_t gt_n = 0, eq_n = 0;
  for (int64_t i = lo + lane; i < hi; i += 32) {
    const uint32_t key = order_key(s[i]);
    gt_n += key > prefix;
    eq_n += key == prefix;
  }
  gt_n = dev::warp_sum(gt_n);
  eq_n = dev::warp_sum(eq_n);
  if (lane == 0) {
    warp_gt[warp] = gt_n;
    warp_eq[warp] = eq_n;
  }
  __syncthreads();
  uint32_t gt_before = 0, eq_before = 0;
  for (int w = 0; w < warp; ++w) {
    gt_before += warp_gt[w];
    eq_before += warp_eq[w];
  }
  const unsigned below = (1u << lane) - 1u;
  for (int64_t b = lo; b < hi; b += 32) {
    const int64_t i = b + lane;
    uint32_t key = 0;
    bool gt = false, eq = false;
    if (i < hi) {
      key = order_key(s[i]);
      gt = key > prefix;
      eq = key == prefix;
    }
    const unsigned gt_mask = __ballot_sync(0xffffffffu, gt), eq_mask = __ballot_sync(0xffffffffu, eq);
    const uint32_t gt_rank = gt_before + uint32_t(__popc(gt_mask & below));
    const uint32_t eq_rank = eq_before + uint32_t(__popc(eq_mask & below));
    if (gt || (eq && eq_rank < remaining)) o[gt_rank + min(eq_rank, remaining)] = int32_t(i);
    gt_before += uint32_t(__popc(gt_mask));
    eq_before += uint32_t(__popc(eq_mask));
  }
}

}  // namespace

void topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, int64_t n, const int32_t* n_valid,
                    int64_t k, int32_t* out, int64_t ld_out, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(ld_out >= k, "topk_positions needs ld_out >= k");
  DSA_CUDA_REQUIRE(n_valid != nullptr || n <= ld_scores || n_rows <= 1, "topk_positions needs n <= ld_scores");
  DSA_CUDA_REQUIRE(n < (int64_t(1) << 31), "topk_positions: row too long for int32 positions");
  if (n_rows <= 0 || k <= 0) return;
  constexpr size_t smem = kCandidates * sizeof(uint32_t);
  DSA_CUDA_CHECK(cudaFuncSetAttribute(topk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  topk_kernel<<<unsigned(n_rows), kThreads, smem, stream>>>(scores, ld_scores, n, n_valid, k, out, ld_out);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
