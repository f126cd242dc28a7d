// CUDA row moves (see rows.hpp): one block per output row for the gathers, a grid-stride loop for
// the rounding.
#include <algorithm>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/rows.hpp"

namespace dsa::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // grid-stride loops cover the rest

__global__ void embed_rows_kernel(const uint16_t* table, int64_t dim, const int32_t* ids, float* out) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  const uint16_t* row = table + int64_t(id) * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) out[i * dim + j] = id < 0 ? 0.0f : dev::bf16_to_float(row[j]);
}

__global__ void gather_rows_kernel(const float* src, int64_t dim, const int32_t* rows, float* dst) {
  const int64_t i = blockIdx.x;
  const float* row = src + int64_t(rows[i]) * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dst[i * dim + j] = row[j];
}

__global__ void round_bf16_kernel(float* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = dev::round_bf16(x[i]);
}

}  // namespace

void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(n < (int64_t(1) << 31), "embed_rows: at most 2^31 - 1 rows per launch");
  if (n <= 0 || dim <= 0) return;
  embed_rows_kernel<<<unsigned(n), kThreads, 0, stream>>>(table, dim, ids, out);
  DSA_CUDA_CHECK_LAUNCH();
}

void gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(n < (int64_t(1) << 31), "gather_rows: at most 2^31 - 1 rows per launch");
  if (n <= 0 || dim <= 0) return;
  gather_rows_kernel<<<unsigned(n), kThreads, 0, stream>>>(src, dim, rows, dst);
  DSA_CUDA_CHECK_LAUNCH();
}

void round_bf16(float* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks);
  round_bf16_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(x, n);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
