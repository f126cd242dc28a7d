// CUDA MoE router, SwiGLU activation and expert combination: the contracts of kernels/cpu/moe.hpp
// on device pointers, launched on `stream`, bit-exact with the CPU: the same fp32 / fp64 operations
// in the same order, each rounded on its own (no fused multiply-add). The one caveat is the fp64 exp
// of the sigmoid and of SiLU: CUDA's and the C library's may differ in the last bit, which changes
// an fp32 result only when it sits on a rounding boundary (odds about 1e-9 per value).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda {

inline constexpr int64_t kMoeMaxExperts = 256;
inline constexpr int64_t kMoeMaxGroups = 32;
inline constexpr int64_t kMoeMaxTopk = 32;

// Routes n_tok tokens, one warp per token, each exactly as cpu::moe_route (noaux_tc, sigmoid
// scoring). logits: [n_tok, n_experts] f32; bias: [n_experts] e_score_correction_bias (only for
// choosing). s = sigmoid(logits) (fp64, rounded to fp32); sb = s + bias; group score = sum of the
// top-2 sb of each group; the topk_group best groups are kept (ties: lower group); the topk best sb
// of their experts are chosen (ties: lower id). idx: [n_tok, topk] chosen experts, best first;
// weight: [n_tok, topk] = s[idx], divided by their sum (NumPy's pairwise order) when norm_topk_prob,
// times routed_scaling. Limits: n_experts <= 256, n_group <= 32, topk <= 32; n_experts % n_group ==
// 0, topk_group <= n_group, topk <= topk_group * n_experts / n_group. Logits and bias finite (with a
// NaN the choice is unspecified, as on the CPU).
void moe_route(const float* logits, const float* bias, int64_t n_tok, int64_t n_experts, int64_t n_group,
               int64_t topk_group, int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx,
               float* weight, cudaStream_t stream);

// out[i] = bf16(silu(gate[i]) * up[i]) with fp64 math, for i < n. out may alias gate or up.
void swiglu(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);

// y: expert output rows [*, dim]; row: [n_tok, topk] the row of y of each (token, slot), or -1 for a
// slot this rank does not run; weight: [n_tok, topk]; shared: [n_tok, dim] or nullptr. out: [n_tok,
// dim] = fp32(sum_k weight[i, k] * y[row[i, k]] in fp64 in slot order, + shared[i]); not rounded.
// out may alias shared, not y.
void moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk, int64_t dim,
                 const float* shared, float* out, cudaStream_t stream);

// rows[p] = p when this rank holds expert idx[p] (idx[p] % n_ranks == rank), else -1: as the CPU.
void moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows, cudaStream_t stream);

}  // namespace dsa::cuda
