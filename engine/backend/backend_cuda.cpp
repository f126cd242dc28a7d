// CudaBackend (see backend_cuda.hpp): memory management and one forwarding call per op.
#include "engine/backend/backend_cuda.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "engine/api/result.hpp"
#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/hadamard.hpp"
#include "kernels/cuda/indexer.hpp"
#include "kernels/cuda/moe.hpp"
#include "kernels/cuda/norm.hpp"
#include "kernels/cuda/quant.hpp"
#include "kernels/cuda/rope.hpp"
#include "kernels/cuda/rows.hpp"
#include "kernels/cuda/topk.hpp"

namespace dsa {
namespace {

constexpr size_t kHostCopyPiece = size_t(64) << 20;

// An instantiated graph, launched on the backend's stream. A graph's own memory (the scratch its
// kernels took while it was captured) is allocated when it is instantiated or launched: the device
// short of it is std::bad_alloc, as a kernel's scratch is (kernels/cuda/check.hpp).
class CudaRecording final : public Backend::Recording {
 public:
  CudaRecording(cudaGraphExec_t exec, cudaStream_t stream, int device) : exec_(exec), stream_(stream), device_(device) {}
  ~CudaRecording() override { cudaGraphExecDestroy(exec_); }
  CudaRecording(const CudaRecording&) = delete;
  CudaRecording& operator=(const CudaRecording&) = delete;
  void replay() override {
    DSA_CUDA_CHECK(cudaSetDevice(device_));
    DSA_CUDA_CHECK_OR_BAD_ALLOC(cudaGraphLaunch(exec_, stream_));
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  int device_;
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the error for later calls
    return 0;
  }
  return n;
}

CudaBackend::CudaBackend(int device) : device_(device) {
  DSA_CHECK(device >= 0 && device < cuda_device_count(), "CudaBackend: no such CUDA device");
  bind();
  cudaStream_t stream = nullptr;
  DSA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;
  // Kernels that take scratch memory from the stream's pool (cudaMallocAsync) get it back from the
  // pool at every step, not from the driver: the pool keeps what they free.
  cudaMemPool_t pool = nullptr;
  DSA_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t keep = UINT64_MAX;
  DSA_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  staging_.resize(kStagingSlots);
  for (Staging& s : staging_) {
    DSA_CUDA_CHECK(cudaMallocHost(&s.host, kStagingBytes));
    cudaEvent_t done = nullptr;
    DSA_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    s.done = done;
  }
}

// Errors are ignored here: the context may already be failing or shut down at exit.
CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  for (void* p : allocations_) cudaFree(p);
  for (void* p : resident_) cudaFree(p);
  for (Staging& s : staging_) {
    cudaFreeHost(s.host);
    cudaEventDestroy(s.done);
  }
  cudaStreamDestroy(stream_);
}

void CudaBackend::bind() const { DSA_CUDA_CHECK(cudaSetDevice(device_)); }

void* CudaBackend::device_malloc(size_t bytes) {
  bind();
  void* p = nullptr;
  DSA_CUDA_CHECK_OR_BAD_ALLOC(cudaMalloc(&p, bytes));
  return p;
}

void CudaBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  for (size_t off = 0; off < bytes; off += kHostCopyPiece)
    DSA_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off,
                                   std::min(kHostCopyPiece, bytes - off), cudaMemcpyHostToDevice, stream_));
  DSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void* CudaBackend::allocate(size_t bytes) {
  DSA_CHECK(!recording_, "allocate() while recording");
  if (bytes == 0) return nullptr;
  void* p = device_malloc(bytes);
  allocations_.insert(p);
  DSA_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  return p;
}

void CudaBackend::release(void* p) {
  DSA_CHECK(!recording_, "release() while recording");
  if (!p) return;
  DSA_CHECK(allocations_.erase(p) == 1, "CudaBackend::release of memory it did not allocate");
  bind();
  DSA_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued work may still use p
  DSA_CUDA_CHECK(cudaFree(p));
}

const void* CudaBackend::resident(const void* src, size_t bytes) {
  DSA_CHECK(!recording_, "resident() while recording");
  if (bytes == 0) return nullptr;
  void* p = device_malloc(bytes);
  resident_.push_back(p);
  copy_from_host(p, src, bytes);
  return p;
}

void CudaBackend::upload(void* dst, const void* src_host, size_t bytes) {
  DSA_CHECK(!recording_, "upload() while recording");
  if (bytes == 0) return;
  bind();
  if (bytes > kStagingBytes) {
    copy_from_host(dst, src_host, bytes);
    return;
  }
  Staging& s = staging_[size_t(next_staging_)];
  next_staging_ = (next_staging_ + 1) % kStagingSlots;
  if (s.pending) DSA_CUDA_CHECK(cudaEventSynchronize(s.done));
  std::memcpy(s.host, src_host, bytes);
  DSA_CUDA_CHECK(cudaMemcpyAsync(dst, s.host, bytes, cudaMemcpyHostToDevice, stream_));
  DSA_CUDA_CHECK(cudaEventRecord(s.done, stream_));
  s.pending = true;
}

void CudaBackend::download(void* dst_host, const void* src, size_t bytes) {
  DSA_CHECK(!recording_, "download() while recording");
  if (bytes == 0) return;
  bind();
  DSA_CUDA_CHECK(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, stream_));
  DSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  bind();
  DSA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::copy_rows(void* dst, size_t ld_dst, const void* src, size_t ld_src, size_t row_bytes,
                            size_t rows) {
  if (rows == 0 || row_bytes == 0) return;
  if (rows == 1) return copy(dst, src, row_bytes);  // any strides, as on the CPU
  bind();
  DSA_CUDA_CHECK(
      cudaMemcpy2DAsync(dst, ld_dst, src, ld_src, row_bytes, rows, cudaMemcpyDeviceToDevice, stream_));
}

std::string CudaBackend::device_name() const {
  cudaDeviceProp prop{};
  DSA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  return prop.name;
}

double CudaBackend::measure_copy_bandwidth(size_t bytes) {
  bind();
  Buffer<uint8_t> a(*this, bytes), b(*this, bytes);
  cudaEvent_t start, stop;
  DSA_CUDA_CHECK(cudaEventCreate(&start));
  DSA_CUDA_CHECK(cudaEventCreate(&stop));
  float best_ms = 0;
  for (int rep = 0; rep < 6; ++rep) {  // the first is a warm-up
    DSA_CUDA_CHECK(cudaEventRecord(start, stream_));
    DSA_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, stream_));
    DSA_CUDA_CHECK(cudaEventRecord(stop, stream_));
    DSA_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    DSA_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (rep > 0 && (best_ms == 0 || ms < best_ms)) best_ms = ms;
  }
  DSA_CUDA_CHECK(cudaEventDestroy(start));
  DSA_CUDA_CHECK(cudaEventDestroy(stop));
  return best_ms > 0 ? 2.0 * double(bytes) / (double(best_ms) * 1e-3) : 0.0;
}

int64_t CudaBackend::max_selected_keys(int64_t kv_lora, int64_t rope_dim) const {
  bind();
  // The tensor-core kernel, and past the two-pass kernel's limit the split-KV kernel, take any
  // number of keys.
  if (cuda::sparse_mla_decode_mma_supported(kv_lora, rope_dim)) return INT64_MAX;
  if (cuda::sparse_mla_decode_split_supported(kv_lora, rope_dim)) return INT64_MAX;
  return cuda::sparse_mla_decode_max_sel(kv_lora, rope_dim);
}

Result<void> CudaBackend::supports(const ModelConfig& c) const {
  const auto over = [](const char* field, int64_t value, const char* limit) {
    return make_error(std::string("the CUDA kernels take ") + limit + "; the model's " + field + " is " +
                      std::to_string(value));
  };
  if (c.index_n_heads > 128) return over("index_n_heads", c.index_n_heads, "index_n_heads <= 128");
  if (c.index_head_dim % 16 != 0 || c.index_head_dim > 128)
    return over("index_head_dim", c.index_head_dim, "index_head_dim = 16 * (1..8)");
  bind();
  if (const cuda::SharedMemoryNeed smem = cuda::indexer_scores_smem(c.index_n_heads, c.index_head_dim);
      smem.bytes > smem.limit)
    return make_error("the CUDA indexer kernel takes " + std::to_string(smem.bytes / 1024) +
                      " KiB of shared memory per block for the model's " + std::to_string(c.index_n_heads) +
                      " indexer heads of " + std::to_string(c.index_head_dim) + "; this GPU gives a block " +
                      std::to_string(smem.limit / 1024) + " KiB (its tensor-core form on sm_80 and later fits)");
  if (c.n_routed_experts > cuda::kMoeMaxExperts) return over("n_routed_experts", c.n_routed_experts, "<= 256 experts");
  if (c.n_group > cuda::kMoeMaxGroups) return over("n_group", c.n_group, "n_group <= 32");
  if (c.num_experts_per_tok > cuda::kMoeMaxTopk)
    return over("num_experts_per_tok", c.num_experts_per_tok, "num_experts_per_tok <= 32");
  return {};
}

void CudaBackend::collective(const std::function<void(void* stream)>& call) {
  bind();
  call(stream_);
}

std::unique_ptr<Backend::Recording> CudaBackend::record(const std::function<void()>& ops) {
  DSA_CHECK(!recording_, "record() inside a recording");
  bind();
  // Thread-local: other threads (other ranks' backends) may use CUDA meanwhile.
  DSA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  recording_ = true;
  cudaGraph_t graph = nullptr;
  try {
    ops();
  } catch (...) {
    recording_ = false;
    if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
    throw;
  }
  recording_ = false;
  DSA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  DSA_CUDA_CHECK_OR_BAD_ALLOC(made);  // cudaGraphInstantiate
  return std::make_unique<CudaRecording>(exec, stream_, device_);
}

void CudaBackend::synchronize() {
  DSA_CHECK(!recording_, "synchronize() while recording");
  bind();
  DSA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

size_t CudaBackend::available_memory() const {
  bind();
  size_t free_bytes = 0, total_bytes = 0;
  DSA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return free_bytes;
}

void CudaBackend::embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out) {
  bind();
  cuda::embed_rows(table, dim, ids, n, out, stream_);
}

void CudaBackend::gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst) {
  bind();
  cuda::gather_rows(src, dim, rows, n, dst, stream_);
}

void CudaBackend::round_bf16(float* x, int64_t n) {
  bind();
  cuda::round_bf16(x, n, stream_);
}

void CudaBackend::rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y) {
  bind();
  cuda::rms_norm(x, rows, n, w, eps, y, stream_);
}

void CudaBackend::add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                               float* y) {
  bind();
  cuda::add_rms_norm(x, residual, rows, n, w, eps, y, stream_);
}

void CudaBackend::layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps,
                             float* y) {
  bind();
  cuda::layer_norm(x, rows, n, w, b, eps, y, stream_);
}

void CudaBackend::matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                              int64_t n, float* y, int64_t ldy, bool round_out_bf16) {
  bind();
  cuda::matmul_bf16(x, ldx, m, k, w, ldw, n, y, ldy, round_out_bf16, stream_);
}

void CudaBackend::matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k,
                                      const uint16_t* w, int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy,
                                      int64_t bsy, int64_t batch, bool round_out_bf16) {
  bind();
  cuda::matmul_bf16_batched(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16, stream_);
}

void CudaBackend::matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                             const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  bind();
  cuda::matmul_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream_);
}

void CudaBackend::apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                             int64_t dim, const int64_t* pos, const float* inv_freq, cpu::RopeLayout layout) {
  bind();
  cuda::apply_rope(x, n_tok, n_heads, tok_stride, head_stride, dim, pos, inv_freq, layout, stream_);
}

void CudaBackend::hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y) {
  bind();
  cuda::hadamard(x, rows, n, scale, y, stream_);
}

void CudaBackend::act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales) {
  bind();
  cuda::act_quant(x, n, block, codes, scales, stream_);
}

void CudaBackend::latent_write(uint8_t* arena, const int32_t* pages, cpu::LatentFormat fmt, int64_t kv_lora,
                               int64_t rope_dim, int64_t n_tok, const int64_t* pos, const float* c_kv,
                               const float* k_pe) {
  bind();
  cuda::latent_write(arena, pages, fmt, kv_lora, rope_dim, n_tok, pos, c_kv, k_pe, stream_);
}

void CudaBackend::sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads,
                                    const cpu::LatentCacheView& view, int64_t pages_stride, int64_t n_q,
                                    const int32_t* sel, int64_t sel_stride, const int32_t* n_sel, int64_t max_sel,
                                    float softmax_scale, float* o_lat) {
  bind();
  // The tensor-core kernel where the device and the widths allow (sm_80+; V3.2's 512 + 64). Else
  // the two-pass kernel up to its shared-memory limit (dense attention over long contexts passes
  // it), the split-KV kernel beyond.
  if (cuda::sparse_mla_decode_mma_supported(view.kv_lora, view.rope_dim)) {
    cuda::sparse_mla_decode_mma_batched(q_abs, q_pe, n_heads, view, pages_stride, n_q, sel, sel_stride, n_sel, max_sel,
                                        softmax_scale, o_lat, stream_);
    return;
  }
  if (max_sel > cuda::sparse_mla_decode_max_sel(view.kv_lora, view.rope_dim)) {
    cuda::sparse_mla_decode_split_batched(q_abs, q_pe, n_heads, view, pages_stride, n_q, sel, sel_stride, n_sel,
                                          max_sel, softmax_scale, o_lat, stream_);
    return;
  }
  cuda::sparse_mla_decode_batched(q_abs, q_pe, n_heads, view, pages_stride, n_q, sel, sel_stride, n_sel, max_sel,
                                  softmax_scale, o_lat, stream_);
}

void CudaBackend::indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t n_tok,
                                const int64_t* pos, const float* k) {
  bind();
  cuda::indexer_write(arena, pages, head_dim, n_tok, pos, k, stream_);
}

void CudaBackend::indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale,
                                       float rot_scale) {
  bind();
  cuda::indexer_fold_weights(w, q_scale, n, head_scale, rot_scale, stream_);
}

void CudaBackend::indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads,
                                 const cpu::IndexerCacheView& view, int64_t pages_stride, int64_t n_q,
                                 const int32_t* n_keys, int64_t max_keys, float* scores, int64_t ld_scores) {
  bind();
  cuda::indexer_scores_batched(q_codes, w, n_heads, view, pages_stride, n_q, n_keys, max_keys, scores, ld_scores,
                               stream_);
}

// The kernel's n (candidates of every row when n_valid is null) is the row stride.
void CudaBackend::topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, const int32_t* n_valid,
                                 int64_t k, int32_t* out, int64_t ld_out) {
  bind();
  cuda::topk_positions(scores, ld_scores, n_rows, ld_scores, n_valid, k, out, ld_out, stream_);
}

void CudaBackend::moe_route(const float* logits, const float* bias, int64_t n_tok, int64_t n_experts,
                            int64_t n_group, int64_t topk_group, int64_t topk, bool norm_topk_prob,
                            float routed_scaling, int32_t* idx, float* weight) {
  bind();
  cuda::moe_route(logits, bias, n_tok, n_experts, n_group, topk_group, topk, norm_topk_prob, routed_scaling, idx,
                  weight, stream_);
}

void CudaBackend::swiglu(const float* gate, const float* up, int64_t n, float* out) {
  bind();
  cuda::swiglu(gate, up, n, out, stream_);
}

void CudaBackend::moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk,
                              int64_t dim, const float* shared, float* out) {
  bind();
  cuda::moe_combine(y, row, weight, n_tok, topk, dim, shared, out, stream_);
}

void CudaBackend::matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs,
                                    int rank, int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n,
                                    float* y, int64_t ldy) {
  bind();
  cuda::matmul_fp8_routed(x, ldx, x_div, idx, n_pairs, rank, n_ranks, experts, k, n, y, ldy, stream_);
}

void CudaBackend::moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows) {
  bind();
  cuda::moe_owned_rows(idx, n_pairs, rank, n_ranks, rows, stream_);
}

void CudaBackend::matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                                     const int32_t* first, const int32_t* first_host, int64_t n_groups,
                                     const cpu::Fp8Matrix* experts, int64_t n, float* y, int64_t ldy) {
  bind();
  cuda::matmul_fp8_grouped(codes, scales, k, row_map, first, first_host, n_groups, experts, n, y, ldy, stream_);
}

}  // namespace dsa
