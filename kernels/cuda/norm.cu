// CUDA RMSNorm and LayerNorm (see norm.hpp). A thread touches the same elements in both passes, so y may alias x.
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/norm.hpp"

namespace dsa::cuda {
namespace {

constexpr int kThreads = 512;

// add_residual: r = x + residual is kept unrounded in y while residual takes bf16(r).
template <bool kAddResidual>
__global__ void rms_norm_kernel(const float* x, float* residual, int64_t n, const float* w, float eps,
                                float* y) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const float* in = x + row * n;
  float* out = y + row * n;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = in[i];
    if constexpr (kAddResidual) {
      float* res = residual + row * n;
      v = __fadd_rn(v, res[i]);
      out[i] = v;
      res[i] = dev::round_bf16(v);
    }
    ss += double(v) * double(v);  // exact products
  }
  ss = dev::block_sum(ss, scratch);
  const double denom = sqrt(ss / double(n) + double(eps));
  const float* src = kAddResidual ? out : in;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    out[i] = dev::round_bf16(__fmul_rn(w[i], float(double(src[i]) / denom)));
}

// fp64 as the CPU, with the products and sums rounded one by one (no fused multiply-add).
__global__ void layer_norm_kernel(const float* x, int64_t n, const float* w, const float* b, float eps, float* y) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const float* in = x + row * n;
  float* out = y + row * n;
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += double(in[i]);
  const double mu = dev::block_sum(sum, scratch) / double(n);
  double var = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double d = __dsub_rn(double(in[i]), mu);
    var = __dadd_rn(var, __dmul_rn(d, d));
  }
  var = dev::block_sum(var, scratch) / double(n);
  const double denom = sqrt(var + double(eps));
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double v = __dadd_rn(__dmul_rn(__ddiv_rn(__dsub_rn(double(in[i]), mu), denom), double(w[i])), double(b[i]));
    out[i] = dev::round_bf16(float(v));
  }
}

}  // namespace

void layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps, float* y,
                cudaStream_t stream) {
  if (rows <= 0) return;
  layer_norm_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, n, w, b, eps, y);
  DSA_CUDA_CHECK_LAUNCH();
}

void rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y,
              cudaStream_t stream) {
  if (rows <= 0) return;
  rms_norm_kernel<false><<<unsigned(rows), kThreads, 0, stream>>>(x, nullptr, n, w, eps, y);
  DSA_CUDA_CHECK_LAUNCH();
}

void add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                  float* y, cudaStream_t stream) {
  if (rows <= 0) return;
  rms_norm_kernel<true><<<unsigned(rows), kThreads, 0, stream>>>(x, residual, n, w, eps, y);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
