#include "engine/backend/backend_cpu.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/hadamard.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/norm.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/rows.hpp"
#include "kernels/cpu/topk.hpp"

namespace dsa {

void* CpuBackend::allocate(size_t bytes) {
  void* p = std::calloc(std::max<size_t>(bytes, 1), 1);
  if (!p) throw std::bad_alloc();
  return p;
}

void CpuBackend::release(void* p) { std::free(p); }

void CpuBackend::upload(void* dst, const void* src_host, size_t bytes) { std::memcpy(dst, src_host, bytes); }

void CpuBackend::download(void* dst_host, const void* src, size_t bytes) { std::memcpy(dst_host, src, bytes); }

void CpuBackend::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }

void CpuBackend::copy_rows(void* dst, size_t ld_dst, const void* src, size_t ld_src, size_t row_bytes, size_t rows) {
  for (size_t r = 0; r < rows; ++r) {
    std::memmove(static_cast<uint8_t*>(dst) + r * ld_dst, static_cast<const uint8_t*>(src) + r * ld_src, row_bytes);
  }
}

size_t CpuBackend::available_memory() const { return SIZE_MAX; }

void CpuBackend::embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out) {
  cpu::embed_rows(table, dim, ids, n, out);
}

void CpuBackend::gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst) {
  cpu::gather_rows(src, dim, rows, n, dst);
}

void CpuBackend::round_bf16(float* x, int64_t n) { cpu::round_bf16(x, n); }

void CpuBackend::rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y) {
  cpu::rms_norm(x, rows, n, w, eps, y);
}

void CpuBackend::add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                              float* y) {
  cpu::add_rms_norm(x, residual, rows, n, w, eps, y);
}

void CpuBackend::layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps,
                            float* y) {
  cpu::layer_norm(x, rows, n, w, b, eps, y);
}

void CpuBackend::matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                             int64_t n, float* y, int64_t ldy, bool round_out_bf16) {
  cpu::matmul_bf16(x, ldx, m, k, w, ldw, n, y, ldy, round_out_bf16);
}

void CpuBackend::matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k,
                                     const uint16_t* w, int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy,
                                     int64_t bsy, int64_t batch, bool round_out_bf16) {
  cpu::matmul_bf16_batched(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16);
}

void CpuBackend::matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                            const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  cpu::matmul_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy);
}

void CpuBackend::apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                            int64_t dim, const int64_t* pos, const float* inv_freq, cpu::RopeLayout layout) {
  cpu::apply_rope(x, n_tok, n_heads, tok_stride, head_stride, dim, pos, inv_freq, layout);
}

void CpuBackend::hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y) {
  cpu::hadamard(x, rows, n, scale, y);
}

void CpuBackend::act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales) {
  cpu::act_quant(x, n, block, codes, scales);
}

void CpuBackend::latent_write(uint8_t* arena, const int32_t* pages, cpu::LatentFormat fmt, int64_t kv_lora,
                              int64_t rope_dim, int64_t n_tok, const int64_t* pos, const float* c_kv,
                              const float* k_pe) {
  for (int64_t i = 0; i < n_tok; ++i) {
    cpu::latent_write(arena, pages, fmt, kv_lora, rope_dim, pos[i], c_kv + i * kv_lora, k_pe + i * rope_dim);
  }
}

void CpuBackend::sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads,
                                   const cpu::LatentCacheView& view, int64_t pages_stride, int64_t n_q,
                                   const int32_t* sel, int64_t sel_stride, const int32_t* n_sel, int64_t,
                                   float softmax_scale, float* o_lat) {
  const int64_t kv_lora = view.kv_lora, rope = view.rope_dim;
  for (int64_t i = 0; i < n_q; ++i) {
    cpu::LatentCacheView row = view;
    row.pages += i * pages_stride;
    cpu::sparse_mla_decode(q_abs + i * n_heads * kv_lora, q_pe + i * n_heads * rope, n_heads, row,
                           sel + i * sel_stride, n_sel[i], softmax_scale, o_lat + i * n_heads * kv_lora);
  }
}

void CpuBackend::indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t n_tok,
                               const int64_t* pos, const float* k) {
  for (int64_t i = 0; i < n_tok; ++i) cpu::indexer_write(arena, pages, head_dim, pos[i], k + i * head_dim);
}

void CpuBackend::indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale, float rot_scale) {
  cpu::indexer_fold_weights(w, q_scale, n, head_scale, rot_scale);
}

void CpuBackend::indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads,
                                const cpu::IndexerCacheView& view, int64_t pages_stride, int64_t n_q,
                                const int32_t* n_keys, int64_t, float* scores, int64_t ld_scores) {
  const int64_t dim = view.head_dim;
  for (int64_t i = 0; i < n_q; ++i) {
    cpu::IndexerCacheView row = view;
    row.pages += i * pages_stride;
    cpu::indexer_scores(q_codes + i * n_heads * dim, w + i * n_heads, n_heads, row, n_keys[i],
                        scores + i * ld_scores);
  }
}

void CpuBackend::topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, const int32_t* n_valid,
                                int64_t k, int32_t* out, int64_t ld_out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t n = n_valid[r], k_r = std::min(k, n);
    int32_t* row = out + r * ld_out;
    cpu::topk_positions(scores + r * ld_scores, n, k_r, row);
    std::fill(row + k_r, row + k, -1);
  }
}

void CpuBackend::moe_route(const float* logits, const float* bias, int64_t n_tok, int64_t n_experts, int64_t n_group,
                           int64_t topk_group, int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx,
                           float* weight) {
  for (int64_t i = 0; i < n_tok; ++i) {
    cpu::moe_route(logits + i * n_experts, bias, n_experts, n_group, topk_group, topk, norm_topk_prob, routed_scaling,
                   idx + i * topk, weight + i * topk);
  }
}

void CpuBackend::swiglu(const float* gate, const float* up, int64_t n, float* out) { cpu::swiglu(gate, up, n, out); }

void CpuBackend::moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk,
                             int64_t dim, const float* shared, float* out) {
  cpu::moe_combine(y, row, weight, n_tok, topk, dim, shared, out);
}

void CpuBackend::matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs,
                                   int rank, int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n,
                                   float* y, int64_t ldy) {
  cpu::matmul_fp8_routed(x, ldx, x_div, idx, n_pairs, rank, n_ranks, experts, k, n, y, ldy);
}

void CpuBackend::moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows) {
  cpu::moe_owned_rows(idx, n_pairs, rank, n_ranks, rows);
}

}  // namespace dsa
