#include "engine/backend/backend_cpu.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/hadamard.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/norm.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/rows.hpp"
#include "kernels/cpu/topk.hpp"

namespace dsa {

namespace {

// The CPU's recording: the ops as closures over their arguments, run in order.
class CpuRecording final : public Backend::Recording {
 public:
  explicit CpuRecording(std::vector<std::function<void()>> ops) : ops_(std::move(ops)) {}
  void replay() override {
    for (const auto& op : ops_) op();
  }

 private:
  std::vector<std::function<void()>> ops_;
};

}  // namespace

template <class Op>
void CpuBackend::run(Op&& op) {
  if (recording_) {
    recording_->emplace_back(std::forward<Op>(op));
  } else {
    op();
  }
}

void CpuBackend::collective(const std::function<void(void* stream)>& call) {
  run([call] { call(nullptr); });
}

std::unique_ptr<Backend::Recording> CpuBackend::record(const std::function<void()>& ops) {
  DSA_CHECK(!recording_, "record() inside a recording");
  std::vector<std::function<void()>> kept;
  recording_ = &kept;
  try {
    ops();
  } catch (...) {
    recording_ = nullptr;
    throw;
  }
  recording_ = nullptr;
  return std::make_unique<CpuRecording>(std::move(kept));
}

void* CpuBackend::allocate(size_t bytes) {
  DSA_CHECK(!recording_, "allocate() while recording");
  bytes = std::max<size_t>(bytes, 1);
  check_room(bytes);
  void* p = std::calloc(bytes, 1);
  if (!p) throw std::bad_alloc();
  sizes_[p] = bytes;
  held_ += bytes;
  peak_ = std::max(peak_, held_);
  return p;
}

void CpuBackend::check_room(size_t bytes) const {
  if (bytes > capacity_ || held_ > capacity_ - bytes) throw std::bad_alloc();
}

void CpuBackend::take_scratch(size_t bytes) {
  check_room(bytes);
  peak_ = std::max(peak_, held_ + bytes);
}

void CpuBackend::release(void* p) {
  DSA_CHECK(!recording_, "release() while recording");
  if (!p) return;
  const auto it = sizes_.find(p);
  DSA_CHECK(it != sizes_.end(), "release() of memory this backend did not allocate");
  held_ -= it->second;
  sizes_.erase(it);
  std::free(p);
}

void CpuBackend::upload(void* dst, const void* src_host, size_t bytes) {
  DSA_CHECK(!recording_, "upload() while recording");
  std::memcpy(dst, src_host, bytes);
}

void CpuBackend::download(void* dst_host, const void* src, size_t bytes) {
  DSA_CHECK(!recording_, "download() while recording");
  std::memcpy(dst_host, src, bytes);
}

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  run([=] { std::memmove(dst, src, bytes); });
}

void CpuBackend::copy_rows(void* dst, size_t ld_dst, const void* src, size_t ld_src, size_t row_bytes, size_t rows) {
  run([=] {
    for (size_t r = 0; r < rows; ++r) {
      std::memmove(static_cast<uint8_t*>(dst) + r * ld_dst, static_cast<const uint8_t*>(src) + r * ld_src, row_bytes);
    }
  });
}

size_t CpuBackend::available_memory() const {
  return capacity_ == SIZE_MAX ? SIZE_MAX : capacity_ - std::min(held_, capacity_);
}

void CpuBackend::embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out) {
  run([=] { cpu::embed_rows(table, dim, ids, n, out); });
}

void CpuBackend::gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst) {
  run([=] { cpu::gather_rows(src, dim, rows, n, dst); });
}

void CpuBackend::round_bf16(float* x, int64_t n) {
  run([=] { cpu::round_bf16(x, n); });
}

void CpuBackend::rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y) {
  run([=] { cpu::rms_norm(x, rows, n, w, eps, y); });
}

void CpuBackend::add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                              float* y) {
  run([=] { cpu::add_rms_norm(x, residual, rows, n, w, eps, y); });
}

void CpuBackend::layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps,
                            float* y) {
  run([=] { cpu::layer_norm(x, rows, n, w, b, eps, y); });
}

void CpuBackend::matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                             int64_t n, float* y, int64_t ldy, bool round_out_bf16) {
  run([=] { cpu::matmul_bf16(x, ldx, m, k, w, ldw, n, y, ldy, round_out_bf16); });
}

void CpuBackend::matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                                     int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy,
                                     int64_t batch, bool round_out_bf16) {
  run([=] { cpu::matmul_bf16_batched(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16); });
}

void CpuBackend::matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                            const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  run([=, this] {
    // The kernel's quantised rows: the values and a scale per 128-block, charged as f32 (the values
    // are bf16 where the kernel multiplies in bf16 pairs, so this bounds them).
    take_scratch(size_t(m) * size_t(k + (k + cpu::kQuantBlock - 1) / cpu::kQuantBlock) * sizeof(float));
    cpu::matmul_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy);
  });
}

void CpuBackend::apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                            int64_t dim, const int64_t* pos, const float* inv_freq, cpu::RopeLayout layout) {
  run([=] { cpu::apply_rope(x, n_tok, n_heads, tok_stride, head_stride, dim, pos, inv_freq, layout); });
}

void CpuBackend::hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y) {
  run([=] { cpu::hadamard(x, rows, n, scale, y); });
}

void CpuBackend::act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales) {
  run([=] { cpu::act_quant(x, n, block, codes, scales); });
}

void CpuBackend::latent_write(uint8_t* arena, const int32_t* pages, cpu::LatentFormat fmt, int64_t kv_lora,
                              int64_t rope_dim, int64_t n_tok, const int64_t* pos, const float* c_kv,
                              const float* k_pe) {
  run([=] {
    for (int64_t i = 0; i < n_tok; ++i) {
      cpu::latent_write(arena, pages, fmt, kv_lora, rope_dim, pos[i], c_kv + i * kv_lora, k_pe + i * rope_dim);
    }
  });
}

void CpuBackend::sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads,
                                   const cpu::LatentCacheView& view, int64_t pages_stride, int64_t n_q,
                                   const int32_t* sel, int64_t sel_stride, const int32_t* n_sel, int64_t max_sel,
                                   float softmax_scale, float* o_lat) {
  run([=] {
    const int64_t kv_lora = view.kv_lora, rope = view.rope_dim;
    for (int64_t i = 0; i < n_q; ++i) {
      // The GPU kernel sizes its shared memory by max_sel: held to it here too.
      DSA_CHECK(n_sel[i] <= max_sel, "sparse_mla_decode: a query selects more than max_sel keys");
      cpu::LatentCacheView row = view;
      row.pages += i * pages_stride;
      cpu::sparse_mla_decode(q_abs + i * n_heads * kv_lora, q_pe + i * n_heads * rope, n_heads, row,
                             sel + i * sel_stride, n_sel[i], softmax_scale, o_lat + i * n_heads * kv_lora);
    }
  });
}

void CpuBackend::indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t n_tok,
                               const int64_t* pos, const float* k) {
  run([=] {
    for (int64_t i = 0; i < n_tok; ++i) cpu::indexer_write(arena, pages, head_dim, pos[i], k + i * head_dim);
  });
}

void CpuBackend::indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale, float rot_scale) {
  run([=] { cpu::indexer_fold_weights(w, q_scale, n, head_scale, rot_scale); });
}

void CpuBackend::indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads,
                                const cpu::IndexerCacheView& view, int64_t pages_stride, int64_t n_q,
                                const int32_t* n_keys, int64_t max_keys, float* scores, int64_t ld_scores) {
  run([=] {
    const int64_t dim = view.head_dim;
    for (int64_t i = 0; i < n_q; ++i) {
      // The GPU kernel's grid covers max_keys keys: held to it here too.
      DSA_CHECK(n_keys[i] <= max_keys && n_keys[i] <= ld_scores, "indexer_scores: a query has more than max_keys keys");
      cpu::IndexerCacheView row = view;
      row.pages += i * pages_stride;
      cpu::indexer_scores(q_codes + i * n_heads * dim, w + i * n_heads, n_heads, row, n_keys[i],
                          scores + i * ld_scores);
    }
  });
}

void CpuBackend::topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, const int32_t* n_valid,
                                int64_t k, int32_t* out, int64_t ld_out) {
  run([=] {
    for (int64_t r = 0; r < n_rows; ++r) {
      const int64_t n = n_valid[r], k_r = std::min(k, n);
      int32_t* row = out + r * ld_out;
      cpu::topk_positions(scores + r * ld_scores, n, k_r, row);
      std::fill(row + k_r, row + k, -1);
    }
  });
}

void CpuBackend::moe_route(const float* logits, const float* bias, int64_t n_tok, int64_t n_experts, int64_t n_group,
                           int64_t topk_group, int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx,
                           float* weight) {
  run([=] {
    for (int64_t i = 0; i < n_tok; ++i) {
      cpu::moe_route(logits + i * n_experts, bias, n_experts, n_group, topk_group, topk, norm_topk_prob, routed_scaling,
                     idx + i * topk, weight + i * topk);
    }
  });
}

void CpuBackend::swiglu(const float* gate, const float* up, int64_t n, float* out) {
  run([=] { cpu::swiglu(gate, up, n, out); });
}

void CpuBackend::moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk,
                             int64_t dim, const float* shared, float* out) {
  run([=] { cpu::moe_combine(y, row, weight, n_tok, topk, dim, shared, out); });
}

void CpuBackend::matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs,
                                   int rank, int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n, float* y,
                                   int64_t ldy) {
  run([=] { cpu::matmul_fp8_routed(x, ldx, x_div, idx, n_pairs, rank, n_ranks, experts, k, n, y, ldy); });
}

void CpuBackend::moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows) {
  run([=] { cpu::moe_owned_rows(idx, n_pairs, rank, n_ranks, rows); });
}

void CpuBackend::matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                                    const int32_t* first, const int32_t* /*first_host: the same memory*/,
                                    int64_t n_groups, const cpu::Fp8Matrix* experts, int64_t n, float* y, int64_t ldy) {
  run([=] { cpu::matmul_fp8_grouped(codes, scales, k, row_map, first, n_groups, experts, n, y, ldy); });
}

}  // namespace dsa
