// Backend: where the forward pass of BackendModel runs. Memory (buffers, uploads, copies) and the
// ops of kernels/ on that memory, one virtual call per kernel launch with the kernel's contract
// (see the kernels/cpu header named at each op; the batched forms of attention and the indexer are
// the CPU contract applied to each query). Two implementations: CpuBackend (host memory,
// kernels/cpu, what CI runs) and CudaBackend (device memory, kernels/cuda, one stream). The model
// picks one at load time and never branches on the device.
//
// Pointers passed to the ops are backend memory unless said otherwise; sizes and scalars are host
// values. Ops are ordered: each sees the results of the ones before it. download() waits for them.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "engine/api/result.hpp"
#include "engine/model/config.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/indexer.hpp"
#include "kernels/cpu/rope.hpp"

namespace dsa {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;  // "cpu", "cuda"

  // --- memory ---
  // Zero-filled; throws std::bad_alloc when the memory is short.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  // Read-only weight bytes living at host address src (the checkpoint's mmap) made usable by the
  // ops: the CPU uses them in place; the GPU copies them once (owned until the backend dies).
  virtual const void* resident(const void* src, size_t bytes) = 0;
  virtual void upload(void* dst, const void* src_host, size_t bytes) = 0;
  virtual void download(void* dst_host, const void* src, size_t bytes) = 0;
  // copy and copy_rows: source and destination do not overlap.
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // rows of row_bytes each, from src (row stride ld_src bytes) to dst (row stride ld_dst bytes).
  virtual void copy_rows(void* dst, size_t ld_dst, const void* src, size_t ld_src, size_t row_bytes,
                         size_t rows) = 0;
  // Bytes the backend can still allocate, or SIZE_MAX when it cannot tell (host memory).
  virtual size_t available_memory() const = 0;
  // A one-line error when a model of config c needs more than the backend's kernels take (heads,
  // widths, experts), checked at load.
  virtual Result<void> supports(const ModelConfig& c) const = 0;
  // Waits until every op issued so far has finished: before another party (a Comm's collective on
  // its own stream) reads what the ops wrote.
  virtual void synchronize() = 0;

  // A collective of the ranks (a Comm's) in order with the ops, and kept in a recording like one:
  // `call` gets the stream the ops run on, to enqueue its work on (CUDA), or null where the ops
  // have finished when it runs (CPU).
  virtual void collective(const std::function<void(void* stream)>& call) = 0;

  // --- recordings (CUDA graphs) ---
  // A recorded sequence of ops, run again by replay() with the arguments they were recorded with,
  // on what the memory holds at replay. Backend memory the ops touch must outlive the recording.
  class Recording {
   public:
    virtual ~Recording() = default;
    virtual void replay() = 0;
  };
  // Records the ops that `ops` issues, without running them. Inside `ops` only ops, copy(),
  // copy_rows() and collective(): memory calls, uploads, downloads and synchronize() are caller
  // bugs there (CUDA cannot capture them).
  virtual std::unique_ptr<Recording> record(const std::function<void()>& ops) = 0;

  // --- ops (contracts: kernels/cpu/<file>.hpp) ---
  // rows.hpp; ids in backend memory.
  virtual void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out) = 0;
  virtual void gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst) = 0;
  virtual void round_bf16(float* x, int64_t n) = 0;
  // norm.hpp
  virtual void rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y) = 0;
  virtual void add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                            float* y) = 0;
  virtual void layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps,
                          float* y) = 0;
  // gemm.hpp (strided forms)
  virtual void matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                           int64_t n, float* y, int64_t ldy, bool round_out_bf16) = 0;
  virtual void matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                                   int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy,
                                   int64_t batch, bool round_out_bf16) = 0;
  virtual void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                          const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) = 0;
  // rope.hpp; pos: [n_tok] int64 and inv_freq in backend memory.
  virtual void apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                          int64_t dim, const int64_t* pos, const float* inv_freq, cpu::RopeLayout layout) = 0;
  // hadamard.hpp, quant.hpp
  virtual void hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y) = 0;
  virtual void act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales) = 0;
  // attention.hpp: n_tok tokens at positions pos (backend memory) of one sequence (page table in
  // backend memory); then the absorbed decode of queries over their selections.
  virtual void latent_write(uint8_t* arena, const int32_t* pages, cpu::LatentFormat fmt, int64_t kv_lora,
                            int64_t rope_dim, int64_t n_tok, const int64_t* pos, const float* c_kv,
                            const float* k_pe) = 0;
  // The most keys one sparse_mla_decode call takes (INT64_MAX: no limit).
  virtual int64_t max_selected_keys(int64_t kv_lora, int64_t rope_dim) const = 0;
  // n_q queries at once (kernels/cuda/attention.hpp sparse_mla_decode_batched): query i's q_abs /
  // o_lat [n_heads, kv_lora] and q_pe [n_heads, rope] follow query i-1's, its page table is
  // view.pages + i * pages_stride (0: all of one sequence), its selection sel + i * sel_stride with
  // n_sel[i] keys (backend memory, each <= max_sel). q_abs and q_pe hold bf16 values (the engine
  // rounds both): the CUDA kernel multiplies them on bf16 tensor cores.
  virtual void sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads,
                                 const cpu::LatentCacheView& view, int64_t pages_stride, int64_t n_q,
                                 const int32_t* sel, int64_t sel_stride, const int32_t* n_sel, int64_t max_sel,
                                 float softmax_scale, float* o_lat) = 0;
  // indexer.hpp: keys of n_tok tokens into the cache; queries' scores over their cached keys.
  virtual void indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t n_tok,
                             const int64_t* pos, const float* k) = 0;
  virtual void indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale,
                                    float rot_scale) = 0;
  // n_q queries' scores (query i: q_codes and w after query i-1's, page table view.pages + i *
  // pages_stride, n_keys[i] keys (backend memory, each <= max_keys), scores + i * ld_scores).
  virtual void indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads,
                              const cpu::IndexerCacheView& view, int64_t pages_stride, int64_t n_q,
                              const int32_t* n_keys, int64_t max_keys, float* scores, int64_t ld_scores) = 0;
  // topk.hpp, for n_rows rows: row r has n_valid[r] candidates (backend memory); out [n_rows, ld_out]
  // gets the min(k, n_valid[r]) best positions ascending, then -1.
  virtual void topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, const int32_t* n_valid,
                              int64_t k, int32_t* out, int64_t ld_out) = 0;
  // moe.hpp: routing of n_tok tokens (logits [n_tok, n_experts]; idx, weight [n_tok, topk]), the
  // activation, and the combination of the expert outputs.
  virtual void moe_route(const float* logits, const float* bias, int64_t n_tok, int64_t n_experts, int64_t n_group,
                         int64_t topk_group, int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx,
                         float* weight) = 0;
  virtual void swiglu(const float* gate, const float* up, int64_t n, float* out) = 0;
  virtual void moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk,
                           int64_t dim, const float* shared, float* out) = 0;
  // Routed pairs without a host round trip (gemm.hpp matmul_fp8_routed: idx and the experts' table
  // in backend memory; moe.hpp moe_owned_rows: moe_combine's row map of its output).
  virtual void matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs,
                                 int rank, int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n, float* y,
                                 int64_t ldy) = 0;
  virtual void moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows) = 0;
  // The routed experts of a longer call, each on the rows grouped to it, in one op per projection
  // (gemm.hpp matmul_fp8_grouped: codes, scales, row_map, first and the experts' table in backend
  // memory); first_host holds first's n_groups + 1 offsets on the host (the size of the work).
  virtual void matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                                  const int32_t* first, const int32_t* first_host, int64_t n_groups,
                                  const cpu::Fp8Matrix* experts, int64_t n, float* y, int64_t ldy) = 0;
};

// An owned allocation of n elements of T in a backend's memory.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& be, size_t n) : be_(&be), n_(n), p_(n ? static_cast<T*>(be.allocate(n * sizeof(T))) : nullptr) {}
  Buffer(Buffer&& o) noexcept : be_(o.be_), n_(std::exchange(o.n_, 0)), p_(std::exchange(o.p_, nullptr)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_;
      n_ = std::exchange(o.n_, 0);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  // Reallocates (contents lost) when fewer than n elements are held, to at least 1.5 times the old
  // size: a buffer that grows by a little every step (the scores row of a decode) reallocates
  // rarely.
  void grow(Backend& be, size_t n) {
    if (n > n_) *this = Buffer(be, std::max(n, n_ + n_ / 2));
  }
  T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  void reset() {
    if (p_) be_->release(p_);
    p_ = nullptr;
    n_ = 0;
  }
  Backend* be_ = nullptr;
  size_t n_ = 0;
  T* p_ = nullptr;
};

}  // namespace dsa
