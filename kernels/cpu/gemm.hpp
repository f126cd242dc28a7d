// Matrix products y = x . W^T for checkpoint linears: bf16 weights, and FP8 e4m3 weights with
// 128x128 block scales (the reference's fp8_gemm). Activations are fp32 arrays holding bf16 values.
// Multi-threaded over the output features (n); for one row (decode) W is streamed once, so the
// speed is the memory bandwidth. Not here: any knowledge of which weight is which.
#pragma once
#include <cstdint>

namespace dsa::cpu {

// x: [m, k] f32 (row stride ldx); w: [n, k] bf16 bits (row stride ldw); y: [m, n] (row stride ldy).
// y = x . w^T accumulated in fp32; round_out_bf16 rounds every output to the nearest bf16 (a bf16
// linear of the reference), otherwise outputs stay fp32 (the MoE gate, the lm_head logits).
void matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                 int64_t n, float* y, int64_t ldy, bool round_out_bf16);
inline void matmul_bf16(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y,
                        bool round_out_bf16) {
  matmul_bf16(x, k, m, k, w, k, n, y, n, round_out_bf16);
}

// batch products y_b = x_b . w_b^T, b < batch, each as matmul_bf16, their operands bsx, bsw and bsy
// elements apart (x_b = x + b * bsx, ...): the absorbed MLA projections of every head. Multi-threaded
// over the products, each then computed on one thread, with the same results as separate calls.
void matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                         int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                         bool round_out_bf16);

// As matmul_bf16 for an fp32 weight w [n, k] (the indexer's weights_proj); fp32 output, not rounded.
void matmul_f32(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y);

// The reference FP8 linear (model-spec 3.1, reference_model.Linear):
//   per row of x and per 128-block of k: act_quant (ue8m0 power-of-two scale sa, e4m3 codes);
//   y[i, j] = bf16( sum_kb  dot_fp32(xq[i, kb], wq[j, kb]) * sa[i, kb] * scale_inv[j / 128, kb] ).
// x: [m, k] f32 (row stride ldx), k % 128 == 0; w: [n, k] e4m3 codes (row stride ldw);
// scale_inv: [ceil(n/128), ld_scale] f32, block (j/128, kb); n may be any size (partial last
// scale row). y: [m, n] (row stride ldy), bf16-rounded.
// Shards: a tensor-parallel slice of rows [n0, n0 + n) with n0 % 128 == 0 is w + n0*ldw,
// scale_inv + (n0/128)*ld_scale; a slice of k [k0, k0 + k) with k0 % 128 == 0 is w + k0,
// scale_inv + k0/128, with x holding that slice of the activations.
void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy);
// Contiguous whole matrix: ldx = ldw = k, ld_scale = ceil(k/128), ldy = n.
inline void matmul_fp8(const float* x, int64_t m, int64_t k, const uint8_t* w, const float* scale_inv,
                       int64_t n, float* y) {
  matmul_fp8(x, k, m, k, w, k, scale_inv, (k + 127) / 128, n, y, n);
}

// One routed expert's FP8 projection [n, k] (rows k apart) and its 128x128 scales
// ([ceil(n/128), ceil(k/128)]); w null: an expert this rank does not hold.
struct Fp8Matrix {
  const uint8_t* w = nullptr;
  const float* scale_inv = nullptr;
};

// The MoE projection of n_pairs routed (token, slot) pairs without grouping them by expert: for
// each pair p whose expert e = idx[p] this rank holds (e % n_ranks == rank), y[p] = matmul_fp8 of
// x's row p / x_div with experts[e]; the other pairs' rows of y are zero. Each row equals the row
// a matmul_fp8 over the pairs grouped by expert gives, bit for bit (matmul_fp8's rows do not depend
// on the rows computed with them). x: row stride ldx; y: [n_pairs, n] (row stride ldy).
void matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs, int rank,
                       int n_ranks, const Fp8Matrix* experts, int64_t k, int64_t n, float* y, int64_t ldy);

// The routed experts of an MoE layer, each on the rows grouped to it, from rows quantised once:
// codes [*, k] e4m3 and scales [*, k / 128] (act_quant of each row, per 128-block). Group g < n_groups
// has rows [first[g], first[g + 1]) (first: n_groups + 1 ascending entries); row r of it reads
// quantised row row_map[r] (row_map null: row r) and y[r] = its matmul_fp8 with experts[g] (the
// Fp8Matrix layout above), bit for bit what matmul_fp8 gives for the row before it was quantised.
// Groups without rows are skipped (their expert may be null); y's other rows are untouched.
// k % 128 == 0; y row stride ldy.
void matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                        const int32_t* first, int64_t n_groups, const Fp8Matrix* experts, int64_t n, float* y,
                        int64_t ldy);

// Portable scalar versions of the products above, same contracts, single-threaded: the reference
// the vectorised paths are tested against.
void matmul_bf16_scalar(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w,
                        int64_t ldw, int64_t n, float* y, int64_t ldy, bool round_out_bf16);
void matmul_fp8_scalar(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w,
                       int64_t ldw, const float* scale_inv, int64_t ld_scale, int64_t n, float* y,
                       int64_t ldy);

}  // namespace dsa::cpu
