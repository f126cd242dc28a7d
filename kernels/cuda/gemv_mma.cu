// Products of up to 16 rows on the tensor cores (see gemv_mma.cuh): matmul_fp8 on FP8 tensor cores
// and matmul_bf16 on bf16 ones, the weights read once for all the rows.
//
// A warp computes 8 output columns for all 16 rows (the rows padded with zeros). Loads go straight
// into the products' fragments, without shared memory: a fragment gives lane (g, t) two registers
// of its row, at k = 4t and 4t + 16 (e4m3, m16n8k32) or 2t and 2t + 8 (bf16, m16n8k16). Any
// permutation of k that A and B share leaves the product unchanged, so lane (g, t) instead reads 16
// consecutive bytes of its row at 16t of each 64-byte step, one load per operand, and takes bytes
// 0-7 for the first product of the step and bytes 8-15 for the second: W's rows are read in 64-byte
// runs.
//
// FP8: the rows are quantised first (act_quant_rows: codes [16, k], scales [k / 128, 16]); per
// 128-block of k, four e4m3 products, the block's sum times the row's and the weight block's scales
// added to the total in fp32, as the reference does. BF16: the rows rounded to bf16 first (their
// values are bf16 already), the products summed over all of k in fp32.
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/gemv_mma.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/quant.hpp"

namespace dsa::cuda::detail {
namespace {

constexpr int kRows = 16;  // the rows of the product (padded with zero codes)
constexpr int kWarps = 8;  // per block, each 8 output columns

// c += the two products of one 64-byte step: av, bv the step's bytes of A's rows g and g + 8, wv
// of B's column g (W's row), in the fragments' permuted order.
template <class Mma>
__device__ __forceinline__ void step_products(float (&c)[4], const uint4& av, const uint4& bv, const uint4& wv,
                                              Mma mma) {
  mma(c, {av.x, bv.x, av.y, bv.y}, {wv.x, wv.y});
  mma(c, {av.z, bv.z, av.w, bv.w}, {wv.z, wv.w});
}

__device__ __forceinline__ uint4 load16(const void* p) { return *reinterpret_cast<const uint4*>(p); }

// Stores the warp's accumulators (rows g and g + 8, columns n0 + 2t and + 1) for the rows < m and
// columns < n, rounded to bf16 or not.
__device__ __forceinline__ void store_tile(const float (&acc)[4], int64_t n0, int64_t m, int64_t n, float* y,
                                           int64_t ldy, bool round_out) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const int64_t row = g + (e >= 2 ? 8 : 0), col = n0 + 2 * t + (e & 1);
    if (row < m && col < n) y[row * ldy + col] = round_out ? dev::round_bf16(acc[e]) : acc[e];
  }
}

// codes [16, k] and sx [k / 128, 16]: the rows quantised. blockIdx.x: 8 warps of 8 columns each.
__global__ void __launch_bounds__(kWarps * 32)
gemv_fp8_mma_kernel(const uint8_t* codes, const float* sx, int64_t k, const uint8_t* w, int64_t ldw,
                    const float* scale_inv, int64_t ld_scale, int64_t n, int64_t m, float* y, int64_t ldy) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t n0 = (int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * 8;
  if (n0 >= n) return;  // whole warps leave together
  // Column n0 + g's row of W (the last one again past n: loaded, never stored); rows g and g + 8.
  const uint8_t* wr = w + min(n0 + g, n - 1) * ldw + 16 * t;
  const uint8_t* xa = codes + int64_t(g) * k + 16 * t;
  const uint8_t* xb = codes + int64_t(g + 8) * k + 16 * t;
  const float* sw = scale_inv + (n0 / dev::kQuantBlock) * ld_scale;  // the 8 columns share a block row
  float acc[4] = {};
  const int64_t blocks = k / dev::kQuantBlock;
#pragma unroll 2
  for (int64_t kb = 0; kb < blocks; ++kb) {
    float c[4] = {};
#pragma unroll
    for (int step = 0; step < 2; ++step) {  // 64 codes each
      const int64_t at = kb * dev::kQuantBlock + step * 64;
      step_products(c, load16(xa + at), load16(xb + at), load16(wr + at),
                    [](float(&c)[4], const uint32_t(&a)[4], const uint32_t(&b)[2]) { dev::mma_e4m3(c, a, b); });
    }
    const float s_w = sw[kb];
    acc[0] = fmaf(c[0] * sx[kb * kRows + g], s_w, acc[0]);
    acc[1] = fmaf(c[1] * sx[kb * kRows + g], s_w, acc[1]);
    acc[2] = fmaf(c[2] * sx[kb * kRows + g + 8], s_w, acc[2]);
    acc[3] = fmaf(c[3] * sx[kb * kRows + g + 8], s_w, acc[3]);
  }
  store_tile(acc, n0, m, n, y, ldy, true);
}

// xs [batch][16, k]: the rows in bf16. blockIdx.x: 8 warps of 8 columns each; blockIdx.y: the
// product of the batch (its W bsw elements on, its y bsy).
__global__ void __launch_bounds__(kWarps * 32)
gemv_bf16_mma_kernel(const uint16_t* xs, int64_t k, const uint16_t* w, int64_t ldw, int64_t bsw, int64_t n,
                     int64_t m, float* y, int64_t ldy, int64_t bsy, bool round_out) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t n0 = (int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * 8;
  if (n0 >= n) return;  // whole warps leave together
  xs += int64_t(blockIdx.y) * kRows * k;
  w += int64_t(blockIdx.y) * bsw;
  y += int64_t(blockIdx.y) * bsy;
  // Column n0 + g's row of W (the last one again past n: loaded, never stored); rows g and g + 8.
  const uint16_t* wr = w + min(n0 + g, n - 1) * ldw + 8 * t;
  const uint16_t* xa = xs + int64_t(g) * k + 8 * t;
  const uint16_t* xb = xs + int64_t(g + 8) * k + 8 * t;
  float acc[4] = {};
#pragma unroll 4
  for (int64_t at = 0; at < k; at += 32) {  // 64 bytes
    step_products(acc, load16(xa + at), load16(xb + at), load16(wr + at),
                  [](float(&c)[4], const uint32_t(&a)[4], const uint32_t(&b)[2]) { dev::mma_bf16(c, a, b); });
  }
  store_tile(acc, n0, m, n, y, ldy, round_out);
}

// xs [batch][16, k] = x's rows in bf16 (x_b = x + b * bsx, rows ldx apart), zeros past m.
__global__ void bf16_rows_kernel(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, int64_t batch,
                                 uint16_t* xs) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= batch * kRows * k) return;
  const int64_t b = e / (kRows * k), row = (e / k) % kRows, c = e % k;
  xs[e] = row < m ? dev::float_to_bf16(x[b * bsx + row * ldx + c]) : uint16_t(0);
}

}  // namespace

bool gemv_fp8_mma_available() {
  if (dev::compute_capability() < 89) return false;
  // The image the device runs must be built for sm_89 or later too: with the default targets (90a, 80) an sm_89 device
  // runs the sm_80 code and a later one JITs the compute_80 PTX, where mma_e4m3 traps.
  cudaFuncAttributes attr{};
  DSA_CUDA_CHECK(cudaFuncGetAttributes(&attr, gemv_fp8_mma_kernel));
  return attr.ptxVersion >= 89;
}

bool gemv_fp8_mma(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                  const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy, cudaStream_t stream) {
  if (m < 1 || m > kRows || n <= 0 || k % dev::kQuantBlock != 0 || ldw % 16 != 0 ||
      !dev::aligned16(w) || !gemv_fp8_mma_available())
    return false;
  // The quantised rows, from the stream's memory pool: codes [16, k], then scales [k / 128, 16].
  const size_t codes_bytes = size_t(kRows) * size_t(k);
  uint8_t* codes =
      dev::pool_scratch<uint8_t>(codes_bytes + size_t(k / dev::kQuantBlock) * kRows * sizeof(float), stream);
  float* sx = reinterpret_cast<float*>(codes + codes_bytes);  // k % 128 == 0: 16-byte aligned
  act_quant_rows(x, ldx, m, kRows, k, codes, sx, stream);
  const int64_t warps = (n + 7) / 8;
  gemv_fp8_mma_kernel<<<unsigned((warps + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(
      codes, sx, k, w, ldw, scale_inv, ld_scale, n, m, y, ldy);
  DSA_CUDA_CHECK_LAUNCH();
  DSA_CUDA_CHECK(cudaFreeAsync(codes, stream));
  return true;
}

bool gemv_bf16_mma(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                   int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch, bool round_out,
                   cudaStream_t stream) {
  if (m < 1 || m > kRows || n <= 0 || batch < 1 || batch > 65535 || k <= 0 || k % 32 != 0 || ldw % 8 != 0 ||
      (batch > 1 && bsw % 8 != 0) || !dev::aligned16(w) || !dev::mma_available())
    return false;
  // The rows in bf16, from the stream's memory pool.
  const int64_t elems = batch * kRows * k;
  uint16_t* xs = dev::pool_scratch<uint16_t>(size_t(elems) * sizeof(uint16_t), stream);
  bf16_rows_kernel<<<unsigned((elems + 255) / 256), 256, 0, stream>>>(x, ldx, bsx, m, k, batch, xs);
  DSA_CUDA_CHECK_LAUNCH();
  const int64_t warps = (n + 7) / 8;
  const dim3 grid(static_cast<unsigned>((warps + kWarps - 1) / kWarps), static_cast<unsigned>(batch));
  gemv_bf16_mma_kernel<<<grid, kWarps * 32, 0, stream>>>(xs, k, w, ldw, bsw, n, m, y, ldy, bsy, round_out);
  DSA_CUDA_CHECK_LAUNCH();
  DSA_CUDA_CHECK(cudaFreeAsync(xs, stream));
  return true;
}

}  // namespace dsa::cuda::detail
