// Tensor-core GEMMs (see gemm_mma.cuh).
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/gemm_mma.cuh"
#include "kernels/cuda/mma.cuh"

namespace dsa::cuda::detail {
namespace {

constexpr int kTileM = 64, kTileN = 64;
constexpr int kThreads = 128;  // four warps, 2 x 2 over the block's tile, 32 x 32 each
constexpr int kPad = 8;        // bf16 elements after each shared-memory row: conflict-free fragment loads

// The warp's 32 x 32 share of a K step of kK columns: A tile [64][kK + kPad] (rows of x), B tile
// [64][kK + kPad] (rows of W), both bf16 bits. acc[mt][nt]: rows wm * 32 + mt * 16 (+ 8), columns
// wn * 32 + nt * 8, in the mma accumulator layout.
template <int kK>
__device__ __forceinline__ void warp_tile(const uint16_t (*A)[kK + kPad], const uint16_t (*B)[kK + kPad], int wm,
                                          int wn, float (&acc)[2][4][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int kk = 0; kk < kK; kk += 16) {
    uint32_t a[2][4], b[4][2];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      const int r = wm * 32 + mt * 16 + g;
      a[mt][0] = *reinterpret_cast<const uint32_t*>(&A[r][kk + 2 * t]);
      a[mt][1] = *reinterpret_cast<const uint32_t*>(&A[r + 8][kk + 2 * t]);
      a[mt][2] = *reinterpret_cast<const uint32_t*>(&A[r][kk + 2 * t + 8]);
      a[mt][3] = *reinterpret_cast<const uint32_t*>(&A[r + 8][kk + 2 * t + 8]);
    }
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      const int c = wn * 32 + nt * 8 + g;
      b[nt][0] = *reinterpret_cast<const uint32_t*>(&B[c][kk + 2 * t]);
      b[nt][1] = *reinterpret_cast<const uint32_t*>(&B[c][kk + 2 * t + 8]);
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) dev::mma_bf16(acc[mt][nt], a[mt], b[nt]);
  }
}

// Calls f(mt, nt, e, r, c) for every accumulator element acc[mt][nt][e] of the warp's share, r
// and c its row and column in the block's 64 x 64 tile (the mma layout: e = 0, 1 at row g, columns
// 2t and 2t + 1; e = 2, 3 at row g + 8).
template <class F>
__device__ __forceinline__ void for_fragment(int wm, int wn, F&& f) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        f(mt, nt, e, wm * 32 + mt * 16 + g + (e >= 2 ? 8 : 0), wn * 32 + nt * 8 + 2 * t + (e & 1));
}

constexpr int kKBf16 = 64;

// blockIdx: x the 64 output columns, y the 64 rows, z the product of a batch.
__global__ void __launch_bounds__(kThreads)
gemm_mma_bf16_kernel(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                     int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, bool round_out) {
  __shared__ __align__(16) uint16_t A[kTileM][kKBf16 + kPad];
  __shared__ __align__(16) uint16_t B[kTileN][kKBf16 + kPad];
  x += int64_t(blockIdx.z) * bsx;
  w += int64_t(blockIdx.z) * bsw;
  y += int64_t(blockIdx.z) * bsy;
  const int64_t i0 = int64_t(blockIdx.y) * kTileM, j0 = int64_t(blockIdx.x) * kTileN;
  const int warp = threadIdx.x >> 5, wm = warp >> 1, wn = warp & 1;
  float acc[2][4][4] = {};
  for (int64_t c0 = 0; c0 < k; c0 += kKBf16) {
    for (int e = threadIdx.x; e < kTileM * kKBf16; e += kThreads) {
      const int r = e / kKBf16, c = e % kKBf16;
      const bool in_k = c0 + c < k;
      A[r][c] = dev::float_to_bf16(i0 + r < m && in_k ? x[(i0 + r) * ldx + c0 + c] : 0.0f);
      B[r][c] = j0 + r < n && in_k ? w[(j0 + r) * ldw + c0 + c] : uint16_t(0);
    }
    __syncthreads();
    warp_tile<kKBf16>(A, B, wm, wn, acc);
    __syncthreads();
  }
  for_fragment(wm, wn, [&](int mt, int nt, int e, int r, int c) {
    const float v = acc[mt][nt][e];
    if (i0 + r < m && j0 + c < n) y[(i0 + r) * ldy + j0 + c] = round_out ? dev::round_bf16(v) : v;
  });
}

constexpr int kKFp8 = dev::kQuantBlock;  // one scale block per K step

__global__ void __launch_bounds__(kThreads)
gemm_mma_fp8_kernel(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                    const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  __shared__ __align__(16) uint16_t A[kTileM][kKFp8 + kPad];
  __shared__ __align__(16) uint16_t B[kTileN][kKFp8 + kPad];
  __shared__ float sa[kTileM];
  const int64_t i0 = int64_t(blockIdx.y) * kTileM, j0 = int64_t(blockIdx.x) * kTileN;
  const int warp = threadIdx.x >> 5, wm = warp >> 1, wn = warp & 1;
  float acc[2][4][4] = {};
  for (int64_t c0 = 0; c0 < k; c0 += kKFp8) {
    {
      // act_quant of the block's rows: two consecutive threads per row, 64 values each.
      const int r = threadIdx.x >> 1, half = threadIdx.x & 1;
      const bool valid = i0 + r < m;
      const float* xr = x + (i0 + r) * ldx + c0 + half * 64;
      float amax = 0.0f;
      for (int e = 0; e < 64; ++e) amax = fmaxf(amax, valid ? fabsf(xr[e]) : 0.0f);
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
      const float s = dev::ue8m0_scale(amax);
      for (int e = 0; e < 64; ++e) {
        const float code = valid ? dev::fp8_to_float(dev::quantise(xr[e], s)) : 0.0f;
        A[r][half * 64 + e] = dev::float_to_bf16(code);  // exact: e4m3 values fit bf16
      }
      if (half == 0) sa[r] = s;
    }
    for (int e = threadIdx.x; e < kTileN * kKFp8; e += kThreads) {
      const int r = e / kKFp8, c = e % kKFp8;
      B[r][c] = dev::float_to_bf16(j0 + r < n ? dev::fp8_to_float(w[(j0 + r) * ldw + c0 + c]) : 0.0f);
    }
    __syncthreads();
    float part[2][4][4] = {};
    warp_tile<kKFp8>(A, B, wm, wn, part);
    // part * sa[row] * sb[column's 128-block of rows of W], as the tiled kernel.
    const int64_t kb = c0 / kKFp8;
    for_fragment(wm, wn, [&](int mt, int nt, int e, int r, int c) {
      const int64_t j = j0 + c;
      const float sb = j < n ? scale_inv[(j / dev::kQuantBlock) * ld_scale + kb] : 0.0f;
      acc[mt][nt][e] += part[mt][nt][e] * sa[r] * sb;
    });
    __syncthreads();
  }
  for_fragment(wm, wn, [&](int mt, int nt, int e, int r, int c) {
    if (i0 + r < m && j0 + c < n) y[(i0 + r) * ldy + j0 + c] = dev::round_bf16(acc[mt][nt][e]);
  });
}

dim3 grid_of(int64_t m, int64_t n, int64_t batch) {
  return dim3(unsigned((n + kTileN - 1) / kTileN), unsigned((m + kTileM - 1) / kTileM), unsigned(batch));
}

}  // namespace

void gemm_mma_bf16(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                   int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch, bool round_out_bf16,
                   cudaStream_t stream) {
  gemm_mma_bf16_kernel<<<grid_of(m, n, batch), kThreads, 0, stream>>>(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy,
                                                                      round_out_bf16);
  DSA_CUDA_CHECK_LAUNCH();
}

void gemm_mma_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                  const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy, cudaStream_t stream) {
  gemm_mma_fp8_kernel<<<grid_of(m, n, 1), kThreads, 0, stream>>>(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y,
                                                                 ldy);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda::detail
