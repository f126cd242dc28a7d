// The MoE router and the SwiGLU activation (model-spec 6).
#pragma once
#include <cstdint>

namespace dsa::cpu {

// Routes one token (noaux_tc, sigmoid scoring). logits: [n_experts] f32 gate outputs; bias:
// [n_experts] e_score_correction_bias (used only to choose). s = sigmoid(logits); sb = s + bias;
// group score = sum of the top-2 sb of each of n_group groups; keep the topk_group best groups
// (ties: lower group); choose the topk best sb among their experts (ties: lower id).
// idx: [topk] chosen experts in rank order (best first); weight: [topk] = s[idx], divided by their
// sum when norm_topk_prob, times routed_scaling. n_experts % n_group == 0.
void moe_route(const float* logits, const float* bias, int64_t n_experts, int64_t n_group, int64_t topk_group,
               int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx, float* weight);

// out[i] = bf16(silu(gate[i]) * up[i]), math in fp64 as the reference mlp. out may alias gate or up.
void swiglu(const float* gate, const float* up, int64_t n, float* out);

// Combines the routed experts' outputs of n_tok tokens: y holds expert output rows; row: [n_tok,
// topk] the row of y of each (token, slot), or -1 for a slot this rank does not run; weight:
// [n_tok, topk] the routing weights. out[i] = sum_k weight[i, k] * y[row[i, k]] summed in fp64 in
// slot order, plus shared[i] (the shared expert's output, when shared is not null), then fp32. Not
// rounded (the ranks' partial sums are added first).
void moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk, int64_t dim,
                 const float* shared, float* out);

// moe_combine's row map for rows laid out per pair (matmul_fp8_routed): rows[p] = p when this rank
// holds expert idx[p] (idx[p] % n_ranks == rank), else -1.
void moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows);

}  // namespace dsa::cpu
