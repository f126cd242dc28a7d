// CUDA MoE router, SwiGLU and combination (see moe.hpp). The router runs one warp per token: the
// scores live in shared memory, lane g scores group g, the kept groups are ranked with one shuffle
// per group, and the experts are chosen one at a time by a warp arg-max over (sb, lower id), which
// picks exactly the prefix of the CPU's stable sort. Every fp operation is an explicit _rn
// intrinsic so nvcc cannot contract or reorder it.
#include <algorithm>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/moe.hpp"

namespace dsa::cuda {
namespace {

constexpr int kRouteWarps = 4;
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride loops cover the rest
constexpr unsigned kFull = 0xffffffffu;

// Monotone map of a float to uint32 (NaN lowest), as the order of cpu::topk_positions.
__device__ __forceinline__ uint32_t order_key(float f) {
  if (isnan(f)) return 0;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The fp32 sum in NumPy's pairwise order (eight accumulators), as cpu moe.cpp's sum_like_numpy.
__device__ float sum_like_numpy(const float* a, int n) {
  if (n < 8) {
    float s = 0.0f;
    for (int i = 0; i < n; ++i) s = __fadd_rn(s, a[i]);
    return s;
  }
  float r[8];
  for (int i = 0; i < 8; ++i) r[i] = a[i];
  int i = 8;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) r[j] = __fadd_rn(r[j], a[i + j]);
  float s = __fadd_rn(__fadd_rn(__fadd_rn(r[0], r[1]), __fadd_rn(r[2], r[3])),
                      __fadd_rn(__fadd_rn(r[4], r[5]), __fadd_rn(r[6], r[7])));
  for (; i < n; ++i) s = __fadd_rn(s, a[i]);
  return s;
}

// Whether candidate (v, e) beats (best, best_e): higher score, ties to the lower id; e < 0 is none.
__device__ __forceinline__ bool beats(float v, int e, float best, int best_e) {
  return e >= 0 && (best_e < 0 || v > best || (v == best && e < best_e));
}

__global__ void __launch_bounds__(kRouteWarps * 32)
moe_route_kernel(const float* logits, const float* bias, int64_t n_tok, int n_experts, int n_group, int topk_group,
                 int topk, bool norm_topk_prob, float routed_scaling, int32_t* idx, float* weight) {
  __shared__ float s_all[kRouteWarps][kMoeMaxExperts];
  __shared__ float sb_all[kRouteWarps][kMoeMaxExperts];
  __shared__ int chosen_all[kRouteWarps][kMoeMaxTopk];
  __shared__ float w_all[kRouteWarps][kMoeMaxTopk];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t t = int64_t(blockIdx.x) * kRouteWarps + warp;
  if (t >= n_tok) return;  // whole warps leave together; no block barriers below
  float* s = s_all[warp];
  float* sb = sb_all[warp];
  int* chosen = chosen_all[warp];
  float* w = w_all[warp];
  const float* lg = logits + t * n_experts;
  for (int e = lane; e < n_experts; e += 32) {
    const float v = __double2float_rn(__ddiv_rn(1.0, __dadd_rn(1.0, exp(-double(lg[e])))));
    s[e] = v;
    sb[e] = __fadd_rn(v, bias[e]);
  }
  __syncwarp();

  // Group scores (lane g: group g), then each group's rank: groups with a larger key, or an equal
  // key and a lower index, come first; the topk_group first are kept.
  const int per = n_experts / n_group;
  uint32_t key = 0;
  if (lane < n_group) {
    float top1 = -INFINITY, top2 = -INFINITY;
    for (int e = lane * per; e < (lane + 1) * per; ++e) {
      const float v = sb[e];
      if (v > top1) {
        top2 = top1;
        top1 = v;
      } else if (v > top2) {
        top2 = v;
      }
    }
    key = order_key(per >= 2 ? __fadd_rn(top2, top1) : top1);
  }
  int rank = 0;
  for (int g = 0; g < n_group; ++g) {
    const uint32_t other = __shfl_sync(kFull, key, g);
    rank += (other > key || (other == key && g < lane)) ? 1 : 0;
  }
  const uint32_t kept = __ballot_sync(kFull, lane < n_group && rank < topk_group);

  // Lane l holds experts l + 32 j; taken: bit j once that expert is chosen.
  uint32_t taken = 0;
  for (int i = 0; i < topk; ++i) {
    float best = -INFINITY;
    int best_e = -1;
    for (int j = 0, e = lane; e < n_experts; ++j, e += 32)
      if (((kept >> (e / per)) & 1u) && !((taken >> j) & 1u) && beats(sb[e], e, best, best_e)) {
        best = sb[e];
        best_e = e;
      }
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(kFull, best, o);
      const int e = __shfl_xor_sync(kFull, best_e, o);
      if (beats(v, e, best, best_e)) {
        best = v;
        best_e = e;
      }
    }
    best_e = __shfl_sync(kFull, best_e, 0);  // one answer even if a NaN broke the order
    if (best_e >= 0 && lane == best_e % 32) taken |= 1u << (best_e / 32);
    if (lane == 0) chosen[i] = best_e;
  }
  __syncwarp();
  if (lane == 0) {
    for (int i = 0; i < topk; ++i) w[i] = s[chosen[i]];
    const float denom = norm_topk_prob ? sum_like_numpy(w, topk) : 1.0f;
    for (int i = 0; i < topk; ++i) {
      idx[t * topk + i] = chosen[i];
      weight[t * topk + i] = __fmul_rn(norm_topk_prob ? __fdiv_rn(w[i], denom) : w[i], routed_scaling);
    }
  }
}

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double g = gate[i];
    const double silu = __ddiv_rn(g, __dadd_rn(1.0, exp(-g)));
    out[i] = dev::round_bf16(__double2float_rn(__dmul_rn(silu, double(up[i]))));
  }
}

__global__ void moe_combine_kernel(const float* y, const int32_t* row, const float* weight, int64_t n_tok,
                                   int64_t topk, int64_t dim, const float* shared, float* out) {
  const int64_t n = n_tok * dim;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / dim, j = e % dim;
    double acc = 0.0;
    for (int64_t k = 0; k < topk; ++k) {
      const int32_t r = row[i * topk + k];
      if (r >= 0) acc = __dadd_rn(acc, __dmul_rn(double(y[int64_t(r) * dim + j]), double(weight[i * topk + k])));
    }
    if (shared) acc = __dadd_rn(acc, double(shared[e]));
    out[e] = __double2float_rn(acc);
  }
}

__global__ void moe_owned_rows_kernel(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < n_pairs; p += int64_t(gridDim.x) * blockDim.x)
    rows[p] = idx[p] % n_ranks == rank ? int32_t(p) : -1;
}

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks)); }

}  // namespace

void moe_route(const float* logits, const float* bias, int64_t n_tok, int64_t n_experts, int64_t n_group,
               int64_t topk_group, int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx,
               float* weight, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(n_experts > 0 && n_experts <= kMoeMaxExperts && n_group > 0 && n_group <= kMoeMaxGroups &&
                       topk >= 0 && topk <= kMoeMaxTopk,
                   "moe_route on the GPU takes up to 256 experts, 32 groups and top-32");
  DSA_CUDA_REQUIRE(n_experts % n_group == 0 && topk_group >= 0 && topk_group <= n_group &&
                       topk <= topk_group * (n_experts / n_group),
                   "moe_route needs whole groups and enough experts in the kept groups");
  if (n_tok <= 0 || topk == 0) return;
  const int64_t blocks = (n_tok + kRouteWarps - 1) / kRouteWarps;
  moe_route_kernel<<<unsigned(blocks), kRouteWarps * 32, 0, stream>>>(
      logits, bias, n_tok, int(n_experts), int(n_group), int(topk_group), int(topk), norm_topk_prob, routed_scaling,
      idx, weight);
  DSA_CUDA_CHECK_LAUNCH();
}

void swiglu(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_kernel<<<grid_for(n), kThreads, 0, stream>>>(gate, up, n, out);
  DSA_CUDA_CHECK_LAUNCH();
}

void moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk, int64_t dim,
                 const float* shared, float* out, cudaStream_t stream) {
  if (n_tok <= 0 || dim <= 0) return;
  moe_combine_kernel<<<grid_for(n_tok * dim), kThreads, 0, stream>>>(y, row, weight, n_tok, topk, dim, shared, out);
  DSA_CUDA_CHECK_LAUNCH();
}

void moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows, cudaStream_t stream) {
  if (n_pairs <= 0) return;
  moe_owned_rows_kernel<<<grid_for(n_pairs), kThreads, 0, stream>>>(idx, n_pairs, rank, n_ranks, rows);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
