// CUDA top-k (see topk.hpp).
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/topk.cuh"
#include "kernels/cuda/topk.hpp"

namespace dsa::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr uint32_t kCandidates = 16384;  // 64 KB of shared memory

using dev::add_histogram;
using dev::order_key;

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
      add_histogram(
          n_candidates, [&](int64_t i) { return candidates[i]; }, prefix, mask, shift, 255u, hist);
    else
      add_histogram(
          nr, [&](int64_t i) { return order_key(s[i]); }, prefix, mask, shift, 255u, hist);
    __syncthreads();
    if (threadIdx.x < 32) dev::select_digit(hist, remaining, &sel_digit, &sel_remaining, &sel_count);
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

  // Ordered pass: the winners in ascending position.
  dev::ordered_write(s, 0, nr, prefix, remaining, 0, 0, o, warp_gt, warp_eq);
}

}  // namespace

void topk_positions_rows(const float* scores, int64_t ld_scores, int64_t n_rows, int64_t n, const int32_t* n_valid,
                         int64_t k, int32_t* out, int64_t ld_out, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(ld_out >= k, "topk_positions needs ld_out >= k");
  DSA_CUDA_REQUIRE(n_valid != nullptr || n <= ld_scores || n_rows <= 1, "topk_positions needs n <= ld_scores");
  DSA_CUDA_REQUIRE(n < (int64_t(1) << 31), "topk_positions: row too long for int32 positions");
  if (n_rows <= 0 || k <= 0) return;
  constexpr size_t smem = kCandidates * sizeof(uint32_t);
  dev::allow_dynamic_smem(topk_kernel, smem);
  topk_kernel<<<unsigned(n_rows), kThreads, smem, stream>>>(scores, ld_scores, n, n_valid, k, out, ld_out);
  DSA_CUDA_CHECK_LAUNCH();
}

void topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, int64_t n, const int32_t* n_valid,
                    int64_t k, int32_t* out, int64_t ld_out, cudaStream_t stream) {
  if (n_rows > 0 && k > 0 && n >= 16384 && n <= topk_split_max_n()) {
    // A block per row would leave most SMs idle.
    if (4 * n_rows <= dev::device_attribute(cudaDevAttrMultiProcessorCount))
      return topk_positions_split(scores, ld_scores, n_rows, n, n_valid, k, out, ld_out, stream);
  }
  topk_positions_rows(scores, ld_scores, n_rows, n, n_valid, k, out, ld_out, stream);
}

}  // namespace dsa::cuda
