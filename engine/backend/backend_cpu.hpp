// CpuBackend: the Backend on host memory with the kernels/cpu reference kernels. Weights are used
// in place in the checkpoint's mmap; every op runs to completion before it returns. It records
// too: a recording keeps each op as a closure over its arguments, so the CPU runs recorded decode
// steps with CUDA graphs' rules (an argument that should have changed since recording shows as a
// wrong result in CI, not only on a GPU).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/backend/backend.hpp"

namespace dsa {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  // At most `bytes` held at once from now on: past it allocate() throws std::bad_alloc, as a full
  // GPU's does, and available_memory() counts down to it (how the engine at full memory is tested
  // on a CPU). SIZE_MAX (the default) is host memory without a bound. The scratch an op takes
  // while it runs counts too, as the CUDA kernels' scratch from the stream's pool does: matmul_fp8
  // throws std::bad_alloc, from the op, when the rows it quantises do not fit beside what is held.
  void set_capacity(size_t bytes) { capacity_ = bytes; }
  size_t held() const { return held_; }
  size_t peak() const { return peak_; }  // the most held at once, scratch included

  void* allocate(size_t bytes) override;
  void release(void* p) override;
  const void* resident(const void* src, size_t) override { return src; }
  void upload(void* dst, const void* src_host, size_t bytes) override;
  void download(void* dst_host, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_rows(void* dst, size_t ld_dst, const void* src, size_t ld_src, size_t row_bytes, size_t rows) override;
  size_t available_memory() const override;
  Result<void> supports(const ModelConfig&) const override { return {}; }
  void synchronize() override {}
  void collective(const std::function<void(void* stream)>& call) override;
  std::unique_ptr<Recording> record(const std::function<void()>& ops) override;

  void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out) override;
  void gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst) override;
  void round_bf16(float* x, int64_t n) override;
  void rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y) override;
  void add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                    float* y) override;
  void layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps,
                  float* y) override;
  void matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw, int64_t n,
                   float* y, int64_t ldy, bool round_out_bf16) override;
  void matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                           int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                           bool round_out_bf16) override;
  void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                  const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) override;
  void apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride, int64_t dim,
                  const int64_t* pos, const float* inv_freq, cpu::RopeLayout layout) override;
  void hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y) override;
  void act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales) override;
  void latent_write(uint8_t* arena, const int32_t* pages, cpu::LatentFormat fmt, int64_t kv_lora, int64_t rope_dim,
                    int64_t n_tok, const int64_t* pos, const float* c_kv, const float* k_pe) override;
  int64_t max_selected_keys(int64_t, int64_t) const override { return INT64_MAX; }
  void sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads, const cpu::LatentCacheView& view,
                         int64_t pages_stride, int64_t n_q, const int32_t* sel, int64_t sel_stride,
                         const int32_t* n_sel, int64_t max_sel, float softmax_scale, float* o_lat) override;
  void indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t n_tok, const int64_t* pos,
                     const float* k) override;
  void indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale, float rot_scale) override;
  void indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads, const cpu::IndexerCacheView& view,
                      int64_t pages_stride, int64_t n_q, const int32_t* n_keys, int64_t max_keys, float* scores,
                      int64_t ld_scores) override;
  void topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, const int32_t* n_valid, int64_t k,
                      int32_t* out, int64_t ld_out) override;
  void moe_route(const float* logits, const float* bias, int64_t n_tok, int64_t n_experts, int64_t n_group,
                 int64_t topk_group, int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx,
                 float* weight) override;
  void swiglu(const float* gate, const float* up, int64_t n, float* out) override;
  void moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk, int64_t dim,
                   const float* shared, float* out) override;
  void matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs, int rank,
                         int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n, float* y,
                         int64_t ldy) override;
  void moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows) override;
  void matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                          const int32_t* first, const int32_t* first_host, int64_t n_groups,
                          const cpu::Fp8Matrix* experts, int64_t n, float* y, int64_t ldy) override;

 private:
  // Runs op now, or keeps it while record() runs.
  template <class Op>
  void run(Op&& op);
  // std::bad_alloc unless `bytes` more fit under the capacity.
  void check_room(size_t bytes) const;
  // Scratch of `bytes` for the op running now, given back when it returns.
  void take_scratch(size_t bytes);
  std::vector<std::function<void()>>* recording_ = nullptr;
  size_t capacity_ = SIZE_MAX;
  size_t held_ = 0;                          // bytes allocated and not released
  size_t peak_ = 0;
  std::unordered_map<void*, size_t> sizes_;  // each allocation's bytes
};

}  // namespace dsa
