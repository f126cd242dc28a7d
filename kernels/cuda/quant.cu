// CUDA act_quant (see quant.hpp): one warp per quantisation block.
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/quant.hpp"

namespace dsa::cuda {
namespace {

constexpr int kWarps = 8;

__global__ void act_quant_kernel(const float* x, int64_t n_blocks, int64_t block, uint8_t* codes,
                                 float* scales) {
  const int lane = threadIdx.x & 31;
  const int64_t b = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (b >= n_blocks) return;  // whole warps leave together
  const float* in = x + b * block;
  float amax = 0.0f;
  for (int64_t i = lane; i < block; i += 32) amax = fmaxf(amax, fabsf(in[i]));
  amax = dev::warp_max(amax);
  const float s = dev::ue8m0_scale(amax);
  if (lane == 0) scales[b] = s;
  for (int64_t i = lane; i < block; i += 32) codes[b * block + i] = dev::quantise(in[i], s);
}

}  // namespace

void act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(block > 0 && n % block == 0, "act_quant needs n to be a multiple of the block");
  const int64_t n_blocks = n / block;
  if (n_blocks == 0) return;
  act_quant_kernel<<<unsigned((n_blocks + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(x, n_blocks, block,
                                                                                         codes, scales);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
