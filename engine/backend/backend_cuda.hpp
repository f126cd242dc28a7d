// CudaBackend: the Backend on one CUDA device, running kernels/cuda on one stream it owns. Memory
// is device memory (cudaMalloc). Ops, copy() and copy_rows() are enqueued on the stream and return
// at once. upload() of up to 1 MiB copies the host bytes into one of 8 pinned staging buffers and
// enqueues the transfer, so it returns at once too; larger uploads, download(), resident() and
// release() wait for the stream. Either way the host buffer may be reused, or the memory freed, as
// soon as the call returns. Work of another stream (an NCCL communicator's) on this memory must be
// ordered by the caller, after a waiting call (synchronize()). Built only with DSA_CUDA.
//
// A CUDA failure or a violated kernel contract stops the program (kernels/cuda/check.hpp); only
// running short of device memory in allocate() or resident() is reported, as std::bad_alloc.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/backend/backend.hpp"

struct CUstream_st;  // cudaStream_t, without the CUDA headers
struct CUevent_st;   // cudaEvent_t

namespace dsa {

// CUDA devices the runtime can use: 0 when there is no driver or no device (never fails).
int cuda_device_count();

class CudaBackend final : public Backend {
 public:
  // Uses device `device` (0 <= device < cuda_device_count()) and creates a non-blocking stream.
  explicit CudaBackend(int device = 0);
  ~CudaBackend() override;  // waits for the stream, frees what is left of allocate() and resident()
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  // The device's name as the driver gives it, e.g. "NVIDIA H100 80GB HBM3".
  std::string device_name() const;
  // Device-memory bandwidth in bytes/s: a device-to-device copy of `bytes` timed with events (each
  // byte read once and written once), the best of a few repeats.
  double measure_copy_bandwidth(size_t bytes);

  void* allocate(size_t bytes) override;
  void release(void* p) override;
  // A device copy of the host bytes, made before returning (64 MiB per copy call) and owned until
  // the backend dies; every call makes its own. Throws std::bad_alloc when the device memory is short.
  const void* resident(const void* src, size_t bytes) override;
  void upload(void* dst, const void* src_host, size_t bytes) override;
  void download(void* dst_host, const void* src, size_t bytes) override;
  // copy and copy_rows: dst must not overlap src (cudaMemcpy*, unlike the CPU's memmove).
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_rows(void* dst, size_t ld_dst, const void* src, size_t ld_src, size_t row_bytes, size_t rows) override;
  size_t available_memory() const override;
  Result<void> supports(const ModelConfig& c) const override;
  void synchronize() override;
  void collective(const std::function<void(void* stream)>& call) override;
  // A CUDA graph of the ops (stream capture), instantiated once; replay() launches it on the stream.
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
  int64_t max_selected_keys(int64_t kv_lora, int64_t rope_dim) const override;
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
  // Makes device_ current on the calling thread (ranks may drive their backends from other threads).
  void bind() const;
  void* device_malloc(size_t bytes);  // std::bad_alloc when short
  void copy_from_host(void* dst, const void* src, size_t bytes);  // waits for the stream

  // Pinned buffers small uploads go through, in turn; a buffer is refilled once its last transfer
  // (event `done`) has finished.
  static constexpr size_t kStagingBytes = size_t(1) << 20;
  static constexpr int kStagingSlots = 8;
  struct Staging {
    void* host = nullptr;
    CUevent_st* done = nullptr;
    bool pending = false;
  };
  std::vector<Staging> staging_;
  int next_staging_ = 0;

  int device_;
  CUstream_st* stream_ = nullptr;
  bool recording_ = false;  // inside record(): memory calls are caller bugs
  std::unordered_set<void*> allocations_;  // live allocate() results
  std::vector<void*> resident_;            // resident() copies
};

}  // namespace dsa
