// CUDA linears (see gemm.hpp).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/gemm_cublaslt.cuh"
#include "kernels/cuda/gemm_grouped.cuh"
#include "kernels/cuda/gemm_mma.cuh"
#include "kernels/cuda/gemv_mma.cuh"
#include "kernels/cuda/mma.cuh"

namespace dsa::cuda {
namespace {

constexpr int kGemvWarps = 8;          // warps per GEMV block, one output row at a time each
constexpr int kGemvFp8RowsPerWarp = 4;  // the fp8 GEMV's act_quant of x is shared by 32 rows
constexpr int kGemvMaxM = 8;            // activation rows one GEMV launch takes
constexpr int kGemvLaunchRows = 16;     // rows taken by GEMV launches of up to kGemvMaxM; more: tiled

using dev::aligned16;

// ---- decode GEMV, bf16 weights: lane c covers 8 consecutive weights per step --------------------
// M activation rows (ldx, ldy apart) share each weight load. blockIdx.y: the product of a batch,
// its operands batch strides (bsx, bsw, bsy) apart.
//
// A row's result is defined chunk by chunk (kBf16Chunk elements of k each): per chunk each lane's
// fp32 sum of its products (8 consecutive weights per step, in order), the warp's sum of those
// (dev::warp_sum), then the chunks' sums added in order from 0 (rounded to bf16 if asked). With
// parts null a warp takes all of k and writes y; otherwise blockIdx.z takes chunks_per_part chunks
// and writes their sums to parts [batch][M][chunks][n], which gemv_bf16_sum_kernel adds in that
// order: splitting k over blocks changes no bit.
constexpr int64_t kBf16Chunk = 512;

template <int M>
__global__ void gemv_bf16_kernel(const float* x, int64_t ldx, int64_t bsx, int64_t k, const uint16_t* w, int64_t ldw,
                                 int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, bool round_out,
                                 int64_t chunks_per_part, float* parts) {
  x += int64_t(blockIdx.y) * bsx;
  w += int64_t(blockIdx.y) * bsw;
  y += int64_t(blockIdx.y) * bsy;
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (row >= n) return;
  const uint16_t* wr = w + row * ldw;
  const int64_t chunks = (k + kBf16Chunk - 1) / kBf16Chunk, ch_lo = int64_t(blockIdx.z) * chunks_per_part;
  const int64_t ch_hi = min(chunks, ch_lo + chunks_per_part);
  float total[M] = {};
  for (int64_t ch = ch_lo; ch < ch_hi; ++ch) {
    const int64_t c_end = min(k, (ch + 1) * kBf16Chunk);
    float acc[M] = {};
#pragma unroll 2
    for (int64_t c = ch * kBf16Chunk + int64_t(lane) * 8; c < c_end; c += 32 * 8) {
      const uint4 wv = __ldg(reinterpret_cast<const uint4*>(wr + c));
      const float wf[8] = {__uint_as_float(wv.x << 16), __uint_as_float(wv.x & 0xffff0000u),
                           __uint_as_float(wv.y << 16), __uint_as_float(wv.y & 0xffff0000u),
                           __uint_as_float(wv.z << 16), __uint_as_float(wv.z & 0xffff0000u),
                           __uint_as_float(wv.w << 16), __uint_as_float(wv.w & 0xffff0000u)};
#pragma unroll
      for (int r = 0; r < M; ++r) {
        const float4 x0 = __ldg(reinterpret_cast<const float4*>(x + r * ldx + c));
        const float4 x1 = __ldg(reinterpret_cast<const float4*>(x + r * ldx + c + 4));
        acc[r] = fmaf(x0.x, wf[0], acc[r]);
        acc[r] = fmaf(x0.y, wf[1], acc[r]);
        acc[r] = fmaf(x0.z, wf[2], acc[r]);
        acc[r] = fmaf(x0.w, wf[3], acc[r]);
        acc[r] = fmaf(x1.x, wf[4], acc[r]);
        acc[r] = fmaf(x1.y, wf[5], acc[r]);
        acc[r] = fmaf(x1.z, wf[6], acc[r]);
        acc[r] = fmaf(x1.w, wf[7], acc[r]);
      }
    }
#pragma unroll
    for (int r = 0; r < M; ++r) {
      const float sum = dev::warp_sum(acc[r]);
      if (!parts) {
        total[r] = __fadd_rn(total[r], sum);
      } else if (lane == 0) {
        parts[((int64_t(blockIdx.y) * M + r) * chunks + ch) * n + row] = sum;
      }
    }
  }
  if (parts || lane != 0) return;
#pragma unroll
  for (int r = 0; r < M; ++r) y[r * ldy + row] = round_out ? dev::round_bf16(total[r]) : total[r];
}

// y of the split bf16 GEMV from its parts [batch][m][chunks][n], in gemv_bf16_kernel's order. A
// thread per output.
__global__ void gemv_bf16_sum_kernel(const float* parts, int64_t batch, int64_t m, int64_t chunks, int64_t n, float* y,
                                     int64_t ldy, int64_t bsy, bool round_out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= batch * m * n) return;
  const int64_t b = i / (m * n), r = (i / n) % m, row = i % n;
  const float* v = parts + (b * m + r) * chunks * n + row;
  float total = 0.0f;
  for (int64_t ch = 0; ch < chunks; ++ch) total = __fadd_rn(total, v[ch * n]);
  y[b * bsy + r * ldy + row] = round_out ? dev::round_bf16(total) : total;
}

// ---- decode GEMV, fp8 weights ---------------------------------------------------------------------
// Shared memory: x's e4m3 codes [k] then its scales [k / 128]. A lane covers 16 weights per step, so
// 8 lanes span one 128-block and a warp step covers 4 blocks; each 8-lane group reduces its block's
// dot, scales it and keeps a running sum.
__device__ __forceinline__ float dot16_fp8(uint4 a, uint4 b) {
  const uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int half = 0; half < 2; ++half) {  // two codes per conversion
      const float2 fa = dev::fp8x2_to_float2(uint16_t(av[i] >> (16 * half)));
      const float2 fb = dev::fp8x2_to_float2(uint16_t(bv[i] >> (16 * half)));
      s = fmaf(fa.x, fb.x, s);
      s = fmaf(fa.y, fb.y, s);
    }
  return s;
}

// The fp8 GEMV of one block over M activation rows (ldx, ldy apart): shared memory holds each row's
// codes [M][k], then the scales [M][k / 128]; every weight load serves the M rows. block: which
// kGemvWarps * kGemvFp8RowsPerWarp output rows. A warp past the last row returns early: callers do
// nothing after it.
//
// Each 128-block kb of k gives a row the value v[kb] = (its dot) * x's scale * W's scale, rounded
// in that order. The row's result is defined as the sum of these in a fixed order whatever part of
// k a block takes: four sums a[j] = v[j] + v[j + 4] + ... (kb % 4 == j, ascending), then
// (a[0] + a[1]) + (a[2] + a[3]), rounded to bf16. With parts null the block takes all of k and
// writes y (lane group j of a warp, 8 lanes per 128-block, keeps a[j]); otherwise it takes the
// blocks [kb_lo, kb_hi) and writes their v to parts [M][k / 128][n], which gemv_fp8_sum_kernel adds
// in that order: splitting k over blocks changes no bit.
template <int M>
__device__ __forceinline__ void gemv_fp8_block(const float* x, int64_t ldx, int64_t k, const uint8_t* w, int64_t ldw,
                                               const float* scale_inv, int64_t ld_scale, int64_t n, float* y,
                                               int64_t ldy, int64_t block, int64_t kb_lo, int64_t kb_hi, float* parts) {
  extern __shared__ __align__(16) uint8_t smem[];
  uint8_t* xq = smem;
  float* xs = reinterpret_cast<float*>(smem + M * k);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n_kb = k / dev::kQuantBlock, span = kb_hi - kb_lo;
  for (int64_t b = warp; b < M * span; b += kGemvWarps) {  // act_quant of x, one warp per (row, block)
    const int64_t r = b / span, kb = kb_lo + b % span;
    const float4 v = *reinterpret_cast<const float4*>(x + r * ldx + kb * dev::kQuantBlock + lane * 4);
    const float amax = dev::warp_max(fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
    const float s = dev::ue8m0_scale(amax);
    const uint32_t q = uint32_t(dev::quantise(v.x, s)) | uint32_t(dev::quantise(v.y, s)) << 8 |
                       uint32_t(dev::quantise(v.z, s)) << 16 | uint32_t(dev::quantise(v.w, s)) << 24;
    *reinterpret_cast<uint32_t*>(xq + r * k + kb * dev::kQuantBlock + lane * 4) = q;
    if (lane == 0) xs[r * n_kb + kb] = s;
  }
  __syncthreads();
  for (int rr = 0; rr < kGemvFp8RowsPerWarp; ++rr) {
    const int64_t row = (block * kGemvFp8RowsPerWarp + rr) * kGemvWarps + warp;
    if (row >= n) return;
    const uint8_t* wr = w + row * ldw;
    const float* si = scale_inv + (row / dev::kQuantBlock) * ld_scale;
    float acc[M] = {};
    const int64_t c_end = kb_hi * dev::kQuantBlock;
    for (int64_t c0 = kb_lo * dev::kQuantBlock; c0 < c_end; c0 += 32 * 16) {
      const int64_t c = c0 + int64_t(lane) * 16;
      const uint4 wv = c < c_end ? __ldg(reinterpret_cast<const uint4*>(wr + c)) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int r = 0; r < M; ++r) {
        float part = 0.0f;
        if (c < c_end) part = dot16_fp8(wv, *reinterpret_cast<const uint4*>(xq + r * k + c));
        part += __shfl_xor_sync(0xffffffffu, part, 1);
        part += __shfl_xor_sync(0xffffffffu, part, 2);
        part += __shfl_xor_sync(0xffffffffu, part, 4);
        if (c < c_end) {
          const int64_t kb = c / dev::kQuantBlock;
          const float v = __fmul_rn(__fmul_rn(part, xs[r * n_kb + kb]), si[kb]);
          if (!parts) {
            acc[r] = __fadd_rn(acc[r], v);
          } else if ((lane & 7) == 0) {
            parts[(r * n_kb + kb) * n + row] = v;
          }
        }
      }
    }
    if (parts) continue;
#pragma unroll
    for (int r = 0; r < M; ++r) {
      // Every lane of a group holds its group's sum: add the four groups.
      float sum = acc[r];
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 8));
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 16));
      if (lane == 0) y[r * ldy + row] = dev::round_bf16(sum);
    }
  }
}

// blockIdx.y: the part of k (kb_per_part 128-blocks each) when parts is not null.
template <int M>
__global__ void gemv_fp8_kernel(const float* x, int64_t ldx, int64_t k, const uint8_t* w, int64_t ldw,
                                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                                int64_t kb_per_part, float* parts) {
  const int64_t n_kb = k / dev::kQuantBlock, kb_lo = int64_t(blockIdx.y) * kb_per_part;
  gemv_fp8_block<M>(x, ldx, k, w, ldw, scale_inv, ld_scale, n, y, ldy, blockIdx.x, kb_lo,
                    min(n_kb, kb_lo + kb_per_part), parts);
}

// y[r][row] from the split GEMV's parts [m][n_kb][n], in gemv_fp8_block's order. A thread per output.
__global__ void gemv_fp8_sum_kernel(const float* parts, int64_t m, int64_t n_kb, int64_t n, float* y, int64_t ldy) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= m * n) return;
  const int64_t r = i / n, row = i % n;
  const float* v = parts + r * n_kb * n + row;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;  // the blocks kb % 4 == 0, 1, 2, 3
  for (int64_t kb = 0; kb < n_kb; kb += 4) {
    a0 = __fadd_rn(a0, v[kb * n]);
    if (kb + 1 < n_kb) a1 = __fadd_rn(a1, v[(kb + 1) * n]);
    if (kb + 2 < n_kb) a2 = __fadd_rn(a2, v[(kb + 2) * n]);
    if (kb + 3 < n_kb) a3 = __fadd_rn(a3, v[(kb + 3) * n]);
  }
  y[r * ldy + row] = dev::round_bf16(__fadd_rn(__fadd_rn(a0, a1), __fadd_rn(a2, a3)));
}

// blockIdx.y: the routed pair, its expert from idx (read on the device: no host round trip);
// a pair of another rank's expert gets zeros.
__global__ void gemv_fp8_routed_kernel(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int rank,
                                       int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n, float* y,
                                       int64_t ldy) {
  const int64_t p = blockIdx.y;
  const int32_t e = idx[p];
  const cpu::Fp8Matrix m = experts[e];
  float* out = y + p * ldy;
  if (e % n_ranks != rank || !m.w) {
    constexpr int64_t rows_per_block = kGemvWarps * kGemvFp8RowsPerWarp;
    for (int64_t j = int64_t(blockIdx.x) * rows_per_block + threadIdx.x; j < n && j < (int64_t(blockIdx.x) + 1) * rows_per_block;
         j += blockDim.x)
      out[j] = 0.0f;
    return;
  }
  const int64_t n_kb = k / dev::kQuantBlock;
  gemv_fp8_block<1>(x + (p / x_div) * ldx, ldx, k, m.w, k, m.scale_inv, n_kb, n, out, ldy, blockIdx.x, 0, n_kb,
                    nullptr);
}

// Calls f(std::integral_constant<int, M>) for M == m, 1 <= m <= kGemvMaxM: the GEMV instance for m rows.
template <class F>
void with_rows(int64_t m, F&& f) {
  static_assert(kGemvMaxM == 8);
  switch (m) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    default: f(std::integral_constant<int, 8>{}); break;
  }
}

// ---- tiled GEMM (any m): 64 x 64 outputs per block of 16 x 16 threads, 4 x 4 per thread ---------
constexpr int kTile = 64;
constexpr int kBkBf16 = 32;

// blockIdx.z: the product of a batch, as in gemv_bf16_kernel.
__global__ void gemm_bf16_kernel(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                                 int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy,
                                 bool round_out) {
  x += int64_t(blockIdx.z) * bsx;
  w += int64_t(blockIdx.z) * bsw;
  y += int64_t(blockIdx.z) * bsy;
  __shared__ float xt[kTile][kBkBf16 + 1];
  __shared__ float wt[kTile][kBkBf16 + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  float acc[4][4] = {};
  for (int64_t c0 = 0; c0 < k; c0 += kBkBf16) {
    for (int e = threadIdx.x; e < kTile * kBkBf16; e += blockDim.x) {
      const int r = e / kBkBf16, cc = e % kBkBf16;
      const int64_t c = c0 + cc;
      xt[r][cc] = (i0 + r < m && c < k) ? x[(i0 + r) * ldx + c] : 0.0f;
      wt[r][cc] = (j0 + r < n && c < k) ? dev::bf16_to_float(w[(j0 + r) * ldw + c]) : 0.0f;
    }
    __syncthreads();
    for (int cc = 0; cc < kBkBf16; ++cc) {
      float a[4], b[4];
      for (int u = 0; u < 4; ++u) a[u] = xt[ty + 16 * u][cc], b[u] = wt[tx + 16 * u][cc];
      for (int u = 0; u < 4; ++u)
        for (int v = 0; v < 4; ++v) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
    }
    __syncthreads();
  }
  for (int u = 0; u < 4; ++u)
    for (int v = 0; v < 4; ++v) {
      const int64_t i = i0 + ty + 16 * u, j = j0 + tx + 16 * v;
      if (i < m && j < n) y[i * ldy + j] = round_out ? dev::round_bf16(acc[u][v]) : acc[u][v];
    }
}

// One 128-block of k per step: the x tile is quantised in the block (4 threads per row, 32 values
// each), codes and weights are held as fp16 (exact for e4m3 values).
__global__ void gemm_fp8_kernel(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  constexpr int kB = dev::kQuantBlock;
  __shared__ __half xt[kTile][kB + 2];
  __shared__ __half wt[kTile][kB + 2];
  __shared__ float sa[kTile];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  float acc[4][4] = {};
  for (int64_t c0 = 0; c0 < k; c0 += kB) {
    {
      const int r = threadIdx.x / 4, part = threadIdx.x % 4;  // 4 consecutive threads per row
      const bool valid = i0 + r < m;
      const float* xr = x + (i0 + r) * ldx + c0 + part * 32;
      float amax = 0.0f;
      for (int e = 0; e < 32; ++e) amax = fmaxf(amax, valid ? fabsf(xr[e]) : 0.0f);
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
      const float s = dev::ue8m0_scale(amax);
      for (int e = 0; e < 32; ++e)
        xt[r][part * 32 + e] = __float2half(valid ? dev::fp8_to_float(dev::quantise(xr[e], s)) : 0.0f);
      if (part == 0) sa[r] = s;
    }
    for (int e = threadIdx.x; e < kTile * kB; e += blockDim.x) {
      const int r = e / kB, cc = e % kB;
      wt[r][cc] = __float2half(j0 + r < n ? dev::fp8_to_float(w[(j0 + r) * ldw + c0 + cc]) : 0.0f);
    }
    __syncthreads();
    float part[4][4] = {};
    for (int cc = 0; cc < kB; ++cc) {
      float a[4], b[4];
      for (int u = 0; u < 4; ++u) a[u] = __half2float(xt[ty + 16 * u][cc]), b[u] = __half2float(wt[tx + 16 * u][cc]);
      for (int u = 0; u < 4; ++u)
        for (int v = 0; v < 4; ++v) part[u][v] = fmaf(a[u], b[v], part[u][v]);
    }
    const int64_t kb = c0 / kB;
    for (int v = 0; v < 4; ++v) {
      const int64_t j = j0 + tx + 16 * v;
      const float sb = j < n ? scale_inv[(j / kB) * ld_scale + kb] : 0.0f;
      for (int u = 0; u < 4; ++u) acc[u][v] += part[u][v] * sa[ty + 16 * u] * sb;
    }
    __syncthreads();
  }
  for (int u = 0; u < 4; ++u)
    for (int v = 0; v < 4; ++v) {
      const int64_t i = i0 + ty + 16 * u, j = j0 + tx + 16 * v;
      if (i < m && j < n) y[i * ldy + j] = dev::round_bf16(acc[u][v]);
    }
}

// How many of a GEMV's `units` of k (128-blocks, 512-element chunks) each block takes: all of them
// where `blocks` blocks of rows fill the GPU, else k split into up to max_parts parts, for about two
// blocks per SM.
int64_t k_units_per_part(int64_t blocks, int64_t units, int64_t max_parts) {
  const int64_t sms = dev::device_attribute(cudaDevAttrMultiProcessorCount);
  if (blocks >= sms || max_parts < 2) return units;
  const int64_t parts = std::min<int64_t>((2 * sms + blocks - 1) / blocks, max_parts);
  return (units + parts - 1) / parts;
}

dim3 tile_grid(int64_t m, int64_t n, int64_t batch = 1) {
  return dim3(unsigned((n + kTile - 1) / kTile), unsigned((m + kTile - 1) / kTile), unsigned(batch));
}

}  // namespace

void matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                 int64_t n, float* y, int64_t ldy, bool round_out_bf16, cudaStream_t stream) {
  matmul_bf16_batched(x, ldx, 0, m, k, w, ldw, 0, n, y, ldy, 0, 1, round_out_bf16, stream);
}

void matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                         int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                         bool round_out_bf16, cudaStream_t stream) {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  DSA_CUDA_REQUIRE(m <= 65535 * int64_t(kTile), "matmul_bf16: m too large for one launch");
  DSA_CUDA_REQUIRE(batch <= 65535, "matmul_bf16: batch too large for one launch");
  // The vector path needs every product's and row's x and w 16-byte aligned.
  const bool vec = k % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w) && (m == 1 || ldx % 4 == 0) &&
                   (batch == 1 || (bsx % 4 == 0 && bsw % 8 == 0));
  // 9 to 16 rows on the tensor cores: the weights read once, not twice.
  if (m > kGemvMaxM && m <= kGemvLaunchRows &&
      detail::gemv_bf16_mma(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16, stream))
    return;
  if (m <= kGemvLaunchRows && vec) {
    // Too few blocks of rows to fill the GPU (the router's 256 rows, the indexer's weights_proj 64):
    // k is split over blocks too, about two blocks per SM.
    const int64_t blocks = (n + kGemvWarps - 1) / kGemvWarps, chunks = (k + kBf16Chunk - 1) / kBf16Chunk;
    const int64_t chunks_per_part = k_units_per_part(blocks * batch, chunks, chunks);
    const int64_t n_parts = (chunks + chunks_per_part - 1) / chunks_per_part;
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(batch), static_cast<unsigned>(n_parts));
    for (int64_t r0 = 0; r0 < m; r0 += kGemvMaxM) {
      const int64_t rows_here = std::min<int64_t>(kGemvMaxM, m - r0);
      float* parts = n_parts > 1
                         ? dev::pool_scratch<float>(size_t(batch * rows_here * chunks * n) * sizeof(float), stream)
                         : nullptr;
      with_rows(rows_here, [&](auto rows) {
        gemv_bf16_kernel<decltype(rows)::value><<<grid, kGemvWarps * 32, 0, stream>>>(
            x + r0 * ldx, ldx, bsx, k, w, ldw, bsw, n, y + r0 * ldy, ldy, bsy, round_out_bf16, chunks_per_part,
            parts);
      });
      DSA_CUDA_CHECK_LAUNCH();
      if (parts) {
        const int64_t outputs = batch * rows_here * n;
        gemv_bf16_sum_kernel<<<unsigned((outputs + 255) / 256), 256, 0, stream>>>(
            parts, batch, rows_here, chunks, n, y + r0 * ldy, ldy, bsy, round_out_bf16);
        DSA_CUDA_CHECK_LAUNCH();
        DSA_CUDA_CHECK(cudaFreeAsync(parts, stream));
      }
    }
    return;
  }
  if (m > kGemvLaunchRows &&
      detail::gemm_cublaslt_bf16(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16, stream))
    return;
  if (dev::mma_available()) {
    detail::gemm_mma_bf16(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16, stream);
    return;
  }
  gemm_bf16_kernel<<<tile_grid(m, n, batch), 256, 0, stream>>>(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy,
                                                               round_out_bf16);
  DSA_CUDA_CHECK_LAUNCH();
}

bool matmul_fp8_cublaslt(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                         const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                         cudaStream_t stream) {
  return detail::gemm_cublaslt_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream);
}

bool matmul_bf16_cublaslt(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                          int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                          bool round_out_bf16, cudaStream_t stream) {
  return detail::gemm_cublaslt_bf16(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16, stream);
}

bool matmul_bf16_gemv_mma(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                          int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                          bool round_out_bf16, cudaStream_t stream) {
  return detail::gemv_bf16_mma(x, ldx, bsx, m, k, w, ldw, bsw, n, y, ldy, bsy, batch, round_out_bf16, stream);
}

bool matmul_fp8_gemv_mma(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                         const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                         cudaStream_t stream) {
  return detail::gemv_fp8_mma(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream);
}

void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                cudaStream_t stream) {
  DSA_CUDA_REQUIRE(k % dev::kQuantBlock == 0, "matmul_fp8 needs k to be a multiple of 128");
  if (m <= 0 || n <= 0) return;
  // 9 to 16 rows on the FP8 tensor cores where there are some: the weights read once, not twice.
  if (m > kGemvMaxM && m <= kGemvLaunchRows && detail::gemv_fp8_mma(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y,
                                                                    ldy, stream))
    return;
  DSA_CUDA_REQUIRE(m <= 65535 * int64_t(kTile), "matmul_fp8: m too large for one launch");
  // Shared memory of the GEMV: m rows of codes and scales; past 48 KiB it is opted into per kernel.
  const size_t smem = size_t(std::min<int64_t>(m, kGemvMaxM)) * (size_t(k) + size_t(k / dev::kQuantBlock) * sizeof(float));
  int device = 0, smem_max = 48 * 1024;
  if (smem > size_t(smem_max)) {
    DSA_CUDA_CHECK(cudaGetDevice(&device));
    DSA_CUDA_CHECK(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  }
  const bool vec = ldw % 16 == 0 && aligned16(x) && aligned16(w) && (m == 1 || ldx % 4 == 0) &&
                   smem <= size_t(smem_max);
  if (m <= kGemvLaunchRows && vec) {
    constexpr int64_t rows_per_block = kGemvWarps * kGemvFp8RowsPerWarp;
    const int64_t blocks = (n + rows_per_block - 1) / rows_per_block;
    // Too few blocks of rows to fill the GPU (a narrow projection: kv_a, q_a, the indexer's wk):
    // k is split over blocks too, about two blocks per SM, 4 128-blocks of k each at least.
    const int64_t n_kb = k / dev::kQuantBlock;
    const int64_t kb_per_part = k_units_per_part(blocks, n_kb, n_kb / 4);
    const int64_t n_parts = (n_kb + kb_per_part - 1) / kb_per_part;
    for (int64_t r0 = 0; r0 < m; r0 += kGemvMaxM) {
      const int64_t rows_here = std::min<int64_t>(kGemvMaxM, m - r0);
      const size_t smem_here = size_t(rows_here) * (size_t(k) + size_t(n_kb) * sizeof(float));
      float* parts =
          n_parts > 1 ? dev::pool_scratch<float>(size_t(rows_here * n_kb * n) * sizeof(float), stream) : nullptr;
      with_rows(rows_here, [&](auto rows) {
        constexpr int M = decltype(rows)::value;
        if (smem_here > 48 * 1024) dev::allow_dynamic_smem(gemv_fp8_kernel<M>, smem_here);
        gemv_fp8_kernel<M><<<dim3(unsigned(blocks), unsigned(n_parts)), kGemvWarps * 32, smem_here, stream>>>(
            x + r0 * ldx, ldx, k, w, ldw, scale_inv, ld_scale, n, y + r0 * ldy, ldy, kb_per_part, parts);
      });
      DSA_CUDA_CHECK_LAUNCH();
      if (parts) {
        const int64_t outputs = rows_here * n;
        gemv_fp8_sum_kernel<<<unsigned((outputs + 255) / 256), 256, 0, stream>>>(parts, rows_here, n_kb, n,
                                                                                 y + r0 * ldy, ldy);
        DSA_CUDA_CHECK_LAUNCH();
        DSA_CUDA_CHECK(cudaFreeAsync(parts, stream));
      }
    }
    return;
  }
  if (detail::gemm_cublaslt_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream)) return;
  if (detail::gemm_fp8_codes(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream)) return;
  if (dev::mma_available()) {
    detail::gemm_mma_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream);
    return;
  }
  gemm_fp8_kernel<<<tile_grid(m, n), 256, 0, stream>>>(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy);
  DSA_CUDA_CHECK_LAUNCH();
}

void matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs, int rank,
                       int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n, float* y, int64_t ldy,
                       cudaStream_t stream) {
  DSA_CUDA_REQUIRE(k % dev::kQuantBlock == 0, "matmul_fp8_routed needs k to be a multiple of 128");
  DSA_CUDA_REQUIRE(x_div >= 1 && n_ranks >= 1, "matmul_fp8_routed needs x_div >= 1 and n_ranks >= 1");
  DSA_CUDA_REQUIRE(n_pairs <= 65535, "matmul_fp8_routed: too many pairs for one launch");
  DSA_CUDA_REQUIRE(k % 16 == 0 && aligned16(x) && ldx % 4 == 0, "matmul_fp8_routed needs 16-byte aligned rows");
  if (n_pairs <= 0 || n <= 0) return;
  const size_t smem = size_t(k) + size_t(k / dev::kQuantBlock) * sizeof(float);
  if (smem > 48 * 1024) dev::allow_dynamic_smem(gemv_fp8_routed_kernel, smem);
  constexpr int64_t rows_per_block = kGemvWarps * kGemvFp8RowsPerWarp;
  const dim3 grid(unsigned((n + rows_per_block - 1) / rows_per_block), unsigned(n_pairs));
  gemv_fp8_routed_kernel<<<grid, kGemvWarps * 32, smem, stream>>>(x, ldx, x_div, idx, rank, n_ranks, experts, k, n, y,
                                                                  ldy);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
