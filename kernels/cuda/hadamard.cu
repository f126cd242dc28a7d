// CUDA Hadamard transform (see hadamard.hpp): one block of n/2 threads per row, one butterfly per
// thread and stage.
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/hadamard.hpp"

namespace dsa::cuda {
namespace {

__global__ void hadamard_kernel(const float* x, int n, double scale, float* y) {
  __shared__ double buf[kHadamardMax];
  const int64_t row = blockIdx.x;
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = x[row * n + i];
  __syncthreads();
  for (int h = 1; h < n; h *= 2) {
    const int p = threadIdx.x;  // butterfly p of n/2: (i, i + h)
    if (p < n / 2) {
      const int i = (p / h) * 2 * h + p % h;
      const double a = buf[i], b = buf[i + h];
      buf[i] = a + b;
      buf[i + h] = a - b;
    }
    __syncthreads();
  }
  for (int i = threadIdx.x; i < n; i += blockDim.x) y[row * n + i] = dev::round_bf16(float(buf[i] * scale));
}

}  // namespace

void hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(n > 0 && (n & (n - 1)) == 0 && n <= kHadamardMax,
                   "hadamard needs a power-of-two size <= 128");
  if (rows <= 0) return;
  const int threads = n >= 64 ? int(n / 2) : 32;
  hadamard_kernel<<<unsigned(rows), threads, 0, stream>>>(x, int(n), scale, y);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
