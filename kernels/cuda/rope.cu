// CUDA RoPE (see rope.hpp): one thread per rotated pair.
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/rope.hpp"

namespace dsa::cuda {
namespace {

__global__ void rope_kernel(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                            int64_t half, const int64_t* pos, const float* inv_freq, bool interleaved) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tok * n_heads * half) return;
  const int64_t j = i % half, h = (i / half) % n_heads, t = i / (half * n_heads);
  const float ang = __fmul_rn(float(pos[t]), inv_freq[j]);
  const float c = float(cos(double(ang))), s = float(sin(double(ang)));
  float* v = x + t * tok_stride + h * head_stride;
  float* pa = interleaved ? v + 2 * j : v + j;
  float* pb = interleaved ? v + 2 * j + 1 : v + j + half;
  const float a = *pa, b = *pb;
  *pa = dev::round_bf16(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
  *pb = dev::round_bf16(__fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c)));
}

}  // namespace

void apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                int64_t dim, const int64_t* pos, const float* inv_freq, RopeLayout layout,
                cudaStream_t stream) {
  DSA_CUDA_REQUIRE(dim % 2 == 0, "apply_rope needs an even rope dimension");
  const int64_t total = n_tok * n_heads * (dim / 2);
  if (total <= 0) return;
  constexpr int kThreads = 256;
  rope_kernel<<<unsigned((total + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      x, n_tok, n_heads, tok_stride, head_stride, dim / 2, pos, inv_freq, layout == RopeLayout::interleaved);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
