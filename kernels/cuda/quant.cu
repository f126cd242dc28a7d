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

// act_quant of x's rows, one warp per (row, 128-block): codes [m_pad][k], scales [k/128][m_pad].
// The padding rows get zero codes and scale 1.
__global__ void quantize_rows_kernel(const float* x, int64_t ldx, int64_t m, int64_t m_pad, int64_t k, uint8_t* codes,
                                     float* scales) {
  const int lane = threadIdx.x & 31;
  const int64_t kb = k / dev::kQuantBlock;
  const int64_t unit = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (unit >= m_pad * kb) return;  // whole warps leave together
  const int64_t row = unit / kb, b = unit % kb;
  uint8_t* c = codes + row * k + b * dev::kQuantBlock;
  if (row >= m) {
    for (int i = lane; i < dev::kQuantBlock; i += 32) c[i] = 0;
    if (lane == 0) scales[b * m_pad + row] = 1.0f;
    return;
  }
  const float* in = x + row * ldx + b * dev::kQuantBlock;
  float v[dev::kQuantBlock / 32], amax = 0.0f;
#pragma unroll
  for (int j = 0; j < dev::kQuantBlock / 32; ++j) amax = fmaxf(amax, fabsf(v[j] = in[lane + 32 * j]));
  const float s = dev::ue8m0_scale(dev::warp_max(amax));
#pragma unroll
  for (int j = 0; j < dev::kQuantBlock / 32; ++j) c[lane + 32 * j] = dev::quantise(v[j], s);
  if (lane == 0) scales[b * m_pad + row] = s;
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

void act_quant_rows(const float* x, int64_t ldx, int64_t m, int64_t m_pad, int64_t k, uint8_t* codes, float* scales,
                    cudaStream_t stream) {
  DSA_CUDA_REQUIRE(k % dev::kQuantBlock == 0 && m_pad >= m, "act_quant_rows needs k % 128 == 0 and m_pad >= m");
  const int64_t units = m_pad * (k / dev::kQuantBlock);
  if (units == 0) return;
  quantize_rows_kernel<<<unsigned((units + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(x, ldx, m, m_pad, k,
                                                                                          codes, scales);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
