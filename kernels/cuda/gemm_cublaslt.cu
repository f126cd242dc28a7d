// matmul_fp8 through cuBLASLt on Hopper, and matmul_bf16 on sm_80+ (see gemm_cublaslt.cuh).
//
// The reference FP8 linear is cuBLASLt's block-scaled FP8 product: the checkpoint's 128 x 128 weight
// scales are its BLK128x128_32F mode, the activations' 1 x 128 act_quant scales its VEC128_32F mode.
// In cuBLASLt's column-major terms, y^T [n, m] = W [n, k] . xq^T [k, m]: A = W (k x n, ld ldw,
// transposed), B = the codes (k x m_pad, ld k), D = y^T in bf16 (n x m_pad, ld n). The scales as
// cuBLASLt reads them: W's [ceil(n/128)][k/128] row-major (the checkpoint's layout, the k blocks a
// multiple of 4), the activations' [k/128][m_pad] (token-major, m_pad a multiple of 4).
//
// The bf16 product is the plain one, y_b^T [n, m] = W_b [n, k] . x_b^T [k, m] for each of the batch
// products: A = W_b (k x n, ld ldw, transposed, bsw apart), B = x_b as bf16 in scratch (k x m, ld k,
// m * k apart), D = y_b^T in f32 written in place (n x m, ld ldy, bsy apart), rounded to bf16 after
// when asked.
#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <tuple>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/gemm_cublaslt.cuh"
#include "kernels/cuda/quant.hpp"

namespace dsa::cuda::detail {
namespace {

constexpr size_t kWorkspace = size_t(32) << 20;  // cuBLASLt's suggested workspace on Hopper

#define DSA_CUBLAS_CHECK(call)                                                       \
  do {                                                                               \
    const cublasStatus_t dsa_cublas_status_ = (call);                                \
    if (dsa_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                               \
      std::fprintf(stderr, "%s:%d: cuBLASLt error %s (in %s)\n", __FILE__, __LINE__, \
                   cublasLtGetStatusName(dsa_cublas_status_), #call);                \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#if CUBLAS_VERSION >= 120900       // the FP8 path (below)
constexpr int64_t kRowAlign = 64;  // m padded to this: fewer distinct problems to plan

// y[i, j] = bf16 d[i, j] as f32, for i < m.
__global__ void bf16_rows_to_f32_kernel(const uint16_t* d, int64_t m, int64_t n, float* y, int64_t ldy) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= m * n) return;
  const int64_t i = e / n, j = e % n;
  y[i * ldy + j] = dev::bf16_to_float(d[e]);
}
#endif

// xb[b, i, j] = bf16 x[b * bsx + i * ldx + j] for i < m, j < k (x holds bf16 values: exact).
__global__ void bf16_operand_kernel(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, int64_t batch,
                                    uint16_t* xb) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= batch * m * k) return;
  const int64_t b = e / (m * k), i = e / k % m, j = e % k;
  xb[e] = dev::float_to_bf16(x[b * bsx + i * ldx + j]);
}

// y[b * bsy + i * ldy + j] rounded to bf16, for i < m, j < n.
__global__ void round_rows_kernel(float* y, int64_t ldy, int64_t bsy, int64_t m, int64_t n, int64_t batch) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= batch * m * n) return;
  const int64_t b = e / (m * n), i = e / n % m, j = e % n;
  float& v = y[b * bsy + i * ldy + j];
  v = dev::round_bf16(v);
}

// One cuBLASLt handle per thread and device (a rank's thread keeps its own), and the plans it has
// chosen per problem.
struct Planner {
  cublasLtHandle_t handle = nullptr;
  // (the product's type and shape: fp8 or bf16, rows as planned, n, k, batch; its strides: ldw,
  // bsw, ldy, bsy; the weights' and the output's alignment) -> cuBLASLt's choice, or none
  using Key =
      std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, uint32_t>;
  std::map<Key, std::optional<cublasLtMatmulAlgo_t>> algos;
  ~Planner() {
    if (handle) cublasLtDestroy(handle);
  }
};

// The planner of this thread and device; null while the stream is being captured into a CUDA graph
// and there is no handle yet (creating one may allocate, which a capture forbids).
Planner* planner(cudaStream_t stream) {
  thread_local std::map<int, Planner> by_device;
  int device = 0;
  DSA_CUDA_CHECK(cudaGetDevice(&device));
  Planner& p = by_device[device];
  if (!p.handle) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    DSA_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
    if (capture != cudaStreamCaptureStatusNone) return nullptr;
    DSA_CUBLAS_CHECK(cublasLtCreate(&p.handle));
  }
  return &p;
}

// The largest power of two up to 256 dividing p's address (and every offset given, in bytes: the
// batch's operands). cuBLASLt's heuristic assumes 256-byte aligned operands unless told less
// (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES), and an algo chosen so may refuse a less aligned one.
uint32_t alignment(const void* p, uint64_t offset = 0) {
  uint32_t a = 256;
  while (reinterpret_cast<uintptr_t>(p) % a != 0 || offset % a != 0) a /= 2;
  return a;
}

// cuBLASLt's first choice for a problem, asked once per key (also when it has none).
const std::optional<cublasLtMatmulAlgo_t>& choose(Planner& plan, const Planner::Key& key, cublasLtMatmulDesc_t op,
                                                  cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                  cublasLtMatrixLayout_t d, uint32_t a_align, uint32_t d_align) {
  auto it = plan.algos.find(key);
  if (it != plan.algos.end()) return it->second;
  cublasLtMatmulPreference_t pref = nullptr;
  DSA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = kWorkspace;
  DSA_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  DSA_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a_align, sizeof a_align));
  for (const auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    DSA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &d_align, sizeof d_align));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(plan.handle, op, a, b, d, d, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  std::optional<cublasLtMatmulAlgo_t> algo;
  if (status == CUBLAS_STATUS_SUCCESS && found > 0) algo = result.algo;
  return plan.algos.emplace(key, algo).first->second;
}

bool is_hopper() { return dev::compute_capability() == 90; }

// The descriptors of one product, destroyed with it.
struct Problem {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  ~Problem() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

bool gemm_cublaslt_fp8_fits(int64_t m, int64_t k, const uint8_t* w, int64_t ldw, const float* scale_inv,
                            int64_t ld_scale, int64_t n, int64_t ldy) {
  const int64_t kb = k / dev::kQuantBlock;
  (void)m;
  (void)ldy;
  return k % dev::kQuantBlock == 0 && kb % 4 == 0 && ld_scale == kb && ldw % 16 == 0 && n % 8 == 0 &&
         dev::aligned16(w) && dev::aligned16(scale_inv) && is_hopper();
}

bool gemm_cublaslt_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                       const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                       cudaStream_t stream) {
#if CUBLAS_VERSION < 120900  // the block-scaled modes came with cuBLAS 12.9
  (void)x, (void)ldx, (void)m, (void)k, (void)w, (void)ldw, (void)scale_inv, (void)ld_scale, (void)n, (void)y,
      (void)ldy, (void)stream;
  return false;
#else
  if (m <= 0 || n <= 0 || !gemm_cublaslt_fp8_fits(m, k, w, ldw, scale_inv, ld_scale, n, ldy)) return false;
  Planner* plan = planner(stream);
  if (!plan) return false;
  DSA_CUDA_REQUIRE(m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX, "matmul_fp8: a dimension past 2^31");
  // Rows padded to 16 for a decode batch, else to 64 (fewer distinct problems to plan).
  const int64_t align = m <= 16 ? 16 : kRowAlign;
  const int64_t kb = k / dev::kQuantBlock, m_pad = (m + align - 1) / align * align;

  Problem p;
  DSA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  const int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F, b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
  DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
  DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
  DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &a_mode, sizeof a_mode));
  DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &b_mode, sizeof b_mode));
  DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_8F_E4M3, uint64_t(k), uint64_t(n), ldw));
  DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_8F_E4M3, uint64_t(k), uint64_t(m_pad), k));
  DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_16BF, uint64_t(n), uint64_t(m_pad), n));

  // The codes, their scales, the bf16 product and cuBLASLt's workspace, from the stream's pool (the
  // scale pointers are set before cuBLASLt is asked for a plan, as its samples do).
  const size_t codes_bytes = size_t(m_pad * k), scales_bytes = size_t(kb * m_pad) * sizeof(float);
  const size_t d_bytes = size_t(m_pad * n) * sizeof(uint16_t);
  const auto up = [](size_t v) { return (v + 255) / 256 * 256; };
  char* scratch = dev::pool_scratch<char>(up(codes_bytes) + up(scales_bytes) + up(d_bytes) + kWorkspace, stream);
  auto* codes = reinterpret_cast<uint8_t*>(scratch);
  auto* scales = reinterpret_cast<float*>(scratch + up(codes_bytes));
  auto* d = reinterpret_cast<uint16_t*>(scratch + up(codes_bytes) + up(scales_bytes));
  void* workspace = scratch + up(codes_bytes) + up(scales_bytes) + up(d_bytes);
  DSA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scale_inv, sizeof scale_inv));
  const float* b_scale = scales;
  DSA_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale, sizeof b_scale));

  // The plan. The weights may be only 16-byte aligned; the scratch operands (codes, product) are
  // 256-byte aligned.
  const uint32_t w_align = alignment(w);
  const Planner::Key key{0, m_pad, n, k, 1, ldw, 0, n, 0, w_align, 256};
  const std::optional<cublasLtMatmulAlgo_t>& algo = choose(*plan, key, p.op, p.a, p.b, p.d, w_align, 256);
  if (!algo) {  // no cuBLASLt kernel for this problem: the caller runs its own
    DSA_CUDA_CHECK(cudaFreeAsync(scratch, stream));
    return false;
  }

  act_quant_rows(x, ldx, m, m_pad, k, codes, scales, stream);
  const float alpha = 1.0f, beta = 0.0f;
  DSA_CUBLAS_CHECK(cublasLtMatmul(plan->handle, p.op, &alpha, w, p.a, codes, p.b, &beta, d, p.d, d, p.d, &*algo,
                                  workspace, kWorkspace, stream));
  const int64_t elems = m * n;
  bf16_rows_to_f32_kernel<<<unsigned((elems + 255) / 256), 256, 0, stream>>>(d, m, n, y, ldy);
  DSA_CUDA_CHECK_LAUNCH();
  DSA_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  return true;
#endif
}

bool gemm_cublaslt_bf16_fits(int64_t m, int64_t k, int64_t ldw, int64_t bsw, int64_t batch) {
  return m > 0 && k > 0 && k % 8 == 0 && ldw % 8 == 0 && bsw % 8 == 0 && (batch == 1 || bsw != 0) &&
         dev::compute_capability() >= 80;
}

bool gemm_cublaslt_bf16(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                        int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch, bool round_out_bf16,
                        cudaStream_t stream) {
  if (m <= 0 || n <= 0 || batch <= 0 || !gemm_cublaslt_bf16_fits(m, k, ldw, bsw, batch)) return false;
  Planner* plan = planner(stream);
  if (!plan) return false;
  DSA_CUDA_REQUIRE(m <= INT32_MAX && n <= INT32_MAX && k <= INT32_MAX && batch <= INT32_MAX,
                   "matmul_bf16: a dimension past 2^31");
  const int64_t bsb = m * k;  // the bf16 operand's batch stride in scratch

  Problem p;
  DSA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
  DSA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
  DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(k), uint64_t(n), ldw));
  DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(k), uint64_t(m), k));
  DSA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_32F, uint64_t(n), uint64_t(m), ldy));
  if (batch > 1) {
    const auto count = int32_t(batch);
    for (const auto& [layout, stride] : {std::pair{p.a, bsw}, std::pair{p.b, bsb}, std::pair{p.d, bsy}}) {
      DSA_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
      DSA_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                        sizeof stride));
    }
  }
  const uint32_t w_align = alignment(w, uint64_t(ldw) * 2 | uint64_t(bsw) * 2);
  const uint32_t y_align = alignment(y, uint64_t(ldy) * 4 | uint64_t(bsy) * 4);
  const Planner::Key key{1, m, n, k, batch, ldw, bsw, ldy, bsy, w_align, y_align};
  const std::optional<cublasLtMatmulAlgo_t>& algo = choose(*plan, key, p.op, p.a, p.b, p.d, w_align, y_align);
  if (!algo) return false;  // no cuBLASLt kernel for this problem: the caller runs its own

  // The rows as bf16 and cuBLASLt's workspace, from the stream's pool.
  const size_t xb_bytes = (size_t(batch * bsb) * sizeof(uint16_t) + 255) / 256 * 256;
  char* scratch = dev::pool_scratch<char>(xb_bytes + kWorkspace, stream);
  auto* xb = reinterpret_cast<uint16_t*>(scratch);
  const int64_t elems = batch * bsb;
  bf16_operand_kernel<<<unsigned((elems + 255) / 256), 256, 0, stream>>>(x, ldx, bsx, m, k, batch, xb);
  DSA_CUDA_CHECK_LAUNCH();
  const float alpha = 1.0f, beta = 0.0f;
  DSA_CUBLAS_CHECK(cublasLtMatmul(plan->handle, p.op, &alpha, w, p.a, xb, p.b, &beta, y, p.d, y, p.d, &*algo,
                                  scratch + xb_bytes, kWorkspace, stream));
  if (round_out_bf16) {
    const int64_t outputs = batch * m * n;
    round_rows_kernel<<<unsigned((outputs + 255) / 256), 256, 0, stream>>>(y, ldy, bsy, m, n, batch);
    DSA_CUDA_CHECK_LAUNCH();
  }
  DSA_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  return true;
}

}  // namespace dsa::cuda::detail
