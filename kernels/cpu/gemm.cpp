// Matrix products for checkpoint linears (see gemm.hpp).
// Layout of the work: output features are cut into blocks of kRows weight rows, spread over threads.
// Few activation rows (decode): each block's weights are converted on the fly and streamed once.
// More rows than one group of kRowsAtOnce (batched decode, prefill): each FP8 block is converted
// once per tile of kTileM activation rows into a buffer, then reused by every group.
// FP8 linears multiply in bf16 pairs where the CPU has AVX512_BF16 (both operands are exact in
// bf16), else in fp32; the block sums are scaled and accumulated in fp64 either way.
#include "kernels/cpu/gemm.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/check.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/dtypes.hpp"

namespace dsa::cpu {
namespace {

using simd::kWidth;
using simd::vf;

constexpr int kRows = 4;          // weight rows computed together (128 % kRows == 0)
constexpr int64_t kTileM = 64;    // activation rows kept in cache while the weight blocks pass
constexpr int kRowsAtOnce = 4;    // activation rows sharing each widened weight vector
constexpr int kPrefetchMaxRows = 4;  // tiles of up to this many activation rows prefetch weights

// Software prefetch of the weights a GEMV reads next, into L2 (prefetcht1): rows of 1-2 KB are too
// short for the hardware prefetcher to ramp up. Into L1 (prefetcht0) the requests wait for L1's
// few miss buffers and stall the loads; into L2 they do not (one-row FP8 7 -> 10 GB/s and bf16 12 ->
// 26 GB/s on one thread of an AMD EPYC).
inline void prefetch_l2(const void* p) { __builtin_prefetch(p, 0, 2); }

struct Bf16Rows {
  const uint16_t* w;
  int64_t ld;
  vf load(int64_t r, int64_t c) const { return simd::load_bf16(w + r * ld + c); }
  static constexpr int64_t kLineElems = 64 / sizeof(*w);
  void prefetch(int64_t r, int64_t c) const { prefetch_l2(w + r * ld + c); }
  float at(int64_t r, int64_t c) const { return bf16_to_float(w[r * ld + c]); }
};
struct F32Rows {
  const float* w;
  int64_t ld;
  vf load(int64_t r, int64_t c) const { return simd::load(w + r * ld + c); }
  static constexpr int64_t kLineElems = 64 / sizeof(*w);
  void prefetch(int64_t r, int64_t c) const { prefetch_l2(w + r * ld + c); }
  float at(int64_t r, int64_t c) const { return w[r * ld + c]; }
};

// out[i * R + r] = x_i . w[j0 + r] for M activation rows (stride ldx) and R weight rows: fp32
// accumulation, any k. Each weight vector is widened once and used by all M rows; every (i, r) gets
// the same operations in the same order whatever M is.
template <int M, int R, class Rows>
inline void dot_tile(const float* x, int64_t ldx, int64_t k, const Rows& w, int64_t j0, float* out) {
  vf acc[M][R];
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = simd::zero();
  int64_t c = 0;
  for (; c + kWidth <= k; c += kWidth) {
    // Few activation rows stream the weights: fetch the next block of rows ahead of use (each row
    // is short, so the hardware prefetcher alone keeps too few lines in flight).
    if constexpr (M <= kPrefetchMaxRows)
      if (c % Rows::kLineElems == 0)
        for (int r = 0; r < R; ++r) w.prefetch(j0 + r + kRows, c);
    vf wv[R];
    for (int r = 0; r < R; ++r) wv[r] = w.load(j0 + r, c);
    for (int i = 0; i < M; ++i) {
      const vf xv = simd::load(x + i * ldx + c);
      for (int r = 0; r < R; ++r) acc[i][r] = simd::fma(xv, wv[r], acc[i][r]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) {
      float v = simd::hsum(acc[i][r]);
      for (int64_t t = c; t < k; ++t) v += x[i * ldx + t] * w.at(j0 + r, t);
      out[i * R + r] = v;
    }
}

// Calls tile.template operator()<M>(i) over rows i0..i1 in groups of M = kRowsAtOnce, then the rest.
template <class Tile>
inline void for_row_groups(int64_t i0, int64_t i1, Tile&& tile) {
  int64_t i = i0;
  for (; i + kRowsAtOnce <= i1; i += kRowsAtOnce) tile.template operator()<kRowsAtOnce>(i);
  switch (i1 - i) {
    case 3: tile.template operator()<3>(i); break;
    case 2: tile.template operator()<2>(i); break;
    case 1: tile.template operator()<1>(i); break;
    default: break;
  }
}

// The FP8 linear's operands in its dot products: quantised activations (FP8 values) and weight
// codes, both exact in bf16. Where the CPU has BF16 dot products they are held as bf16 and
// multiplied in pairs (kFp8Step = 32 values per instruction); else as fp32 with fused multiply-adds.
#if defined(__AVX512BF16__)
using Fp8Elem = uint16_t;  // bf16 bits
using Fp8Vec = simd::vbh;
constexpr int kFp8Step = simd::kBf16Width;
inline Fp8Vec load_elems(const uint16_t* p) { return simd::load_bf16x32(p); }
inline Fp8Vec load_codes(const uint8_t* p) { return simd::load_fp8_bf16(p); }
constexpr float kCodesUnscale = 1.0f;  // load_codes gives the codes' values
inline void store_elems(uint16_t* p, Fp8Vec v) { simd::store_bf16x32(p, v); }
inline vf multiply_add(Fp8Vec x, Fp8Vec w, vf acc) { return simd::dot_bf16(x, w, acc); }
inline Fp8Elem to_elem(float v) { return float_to_bf16(v); }  // exact: v is an FP8 value
#else
using Fp8Elem = float;
using Fp8Vec = vf;
constexpr int kFp8Step = kWidth;
inline Fp8Vec load_elems(const float* p) { return simd::load(p); }
inline Fp8Vec load_codes(const uint8_t* p) { return simd::load_fp8(p); }
constexpr float kCodesUnscale = simd::kFp8Unscale;  // load_codes gives the values times 2^-8
inline void store_elems(float* p, Fp8Vec v) { simd::store(p, v); }
inline vf multiply_add(Fp8Vec x, Fp8Vec w, vf acc) { return simd::fma(x, w, acc); }
inline Fp8Elem to_elem(float v) { return v; }
#endif
static_assert(kQuantBlock % kFp8Step == 0);

// FP8 weight rows for dot_tile_fp8: e4m3 codes converted per vector (load_codes, the values times
// 2^-8), or the same values already converted into a buffer (one row of k per weight row), which
// gives the same numbers with the conversion paid once for many activation rows.
struct Fp8Codes {
  const uint8_t* w;
  int64_t ld;
  Fp8Vec load(int r, int64_t c) const { return load_codes(w + r * ld + c); }
  // The same columns of the next block of kRows weight rows, a cache line at a time.
  void prefetch_next(int r, int64_t c0) const {
    for (int64_t c = c0; c < c0 + kQuantBlock; c += 64) prefetch_l2(w + (r + kRows) * ld + c);
  }
};
struct Fp8Converted {
  const Fp8Elem* w;  // [R, k]: load_codes of the codes
  int64_t ld;
  Fp8Vec load(int r, int64_t c) const { return load_elems(w + r * ld + c); }
  void prefetch_next(int, int64_t) const {}
};

// out[i * R + r] = bf16(sum_kb (xq_i[kb] . w_r[kb]) * xs_i[kb] * ws[kb]) for M activation rows and
// R weight rows: the FP8 linear's block-scaled dot. As the reference: each block's dot is an fp32
// sum, scaled and accumulated in fp64. xq: quantised activations (row stride k); xs: their scales
// times kCodesUnscale (row stride k / 128); w: the R weight rows (Fp8Codes or Fp8Converted), each
// vector used by all M activation rows; ws: the weight scale row of the 128-row group holding these
// R rows. Every (i, r) gets the same operations in the same order whatever M is and whichever weight
// source, so a row's result does not depend on which rows it is batched with. k % 128 == 0.
template <int M, int R, class W>
inline void dot_tile_fp8(const Fp8Elem* xq, const float* xs, int64_t k, const W& w, const float* ws, float* out) {
  const int64_t n_kb = k / kQuantBlock;
  // The 4 x 4 tile of AVX-512 scales and adds its 16 block sums as vectors, in hsum_transposed's
  // lane order (lane 4r + i for row i, weight row r); other tiles one by one. The operations on
  // each sum are the same.
#if defined(__AVX512F__)
  constexpr bool kVectorSums = M == 4 && R == 4;
  __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
#endif
  double acc[M][R] = {};
  for (int64_t kb = 0; kb < n_kb; ++kb) {
    vf part[M][R];
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < R; ++r) part[i][r] = simd::zero();
    const int64_t c0 = kb * kQuantBlock;
    // Few activation rows stream the weights: fetch the next block of rows ahead of use (each row
    // is short, so the hardware prefetcher alone keeps too few lines in flight).
    if constexpr (M <= kPrefetchMaxRows)
      for (int r = 0; r < R; ++r) w.prefetch_next(r, c0);
    for (int64_t c = c0; c < c0 + kQuantBlock; c += kFp8Step) {
      Fp8Vec wv[R];
      for (int r = 0; r < R; ++r) wv[r] = w.load(r, c);
      for (int i = 0; i < M; ++i) {
        const Fp8Vec xv = load_elems(xq + i * k + c);
        for (int r = 0; r < R; ++r) part[i][r] = multiply_add(xv, wv[r], part[i][r]);
      }
    }
#if defined(__AVX512F__)
    if constexpr (kVectorSums) {
      const vf sums = simd::hsum_transposed<16>(&part[0][0]);  // lane 4r + i
      const __m128 xs4 =
          _mm_mul_ps(_mm_setr_ps(xs[kb], xs[n_kb + kb], xs[2 * n_kb + kb], xs[3 * n_kb + kb]), _mm_set1_ps(ws[kb]));
      const vf scale = _mm512_broadcast_f32x4(xs4);  // lane 4r + i: xs_i * ws
      const auto low = [](vf v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); };
      const auto high = [](vf v) {
        return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
      };
      acc_lo = _mm512_fmadd_pd(low(sums), low(scale), acc_lo);
      acc_hi = _mm512_fmadd_pd(high(sums), high(scale), acc_hi);
      continue;
    }
#endif
    float sums[M * R];
    simd::hsum_many<M * R>(&part[0][0], sums);
    for (int i = 0; i < M; ++i) {
      const float scale = xs[i * n_kb + kb] * ws[kb];
      for (int r = 0; r < R; ++r) acc[i][r] = std::fma(double(sums[i * R + r]), double(scale), acc[i][r]);
    }
  }
#if defined(__AVX512F__)
  if constexpr (kVectorSums) {
    alignas(64) double lanes[16];
    _mm512_store_pd(lanes, acc_lo);
    _mm512_store_pd(lanes + 8, acc_hi);
    for (int i = 0; i < M; ++i)
      for (int r = 0; r < R; ++r) acc[i][r] = lanes[4 * r + i];
  }
#endif
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) out[i * R + r] = round_bf16(float(acc[i][r]));
}

// Weight rows per dot_tile_fp8 call for M activation rows: as many as keep the partial sums, the
// weight vectors, an activation vector and two more in registers (16 with AVX2, 32 with AVX-512),
// down to 1.
template <int M>
constexpr int fp8_tile_rows(int rows) {
  constexpr int kRegisters = kWidth == 16 ? 32 : 16;
  while (rows > 1 && M * rows + rows + 3 > kRegisters) rows /= 2;
  return rows;
}

// dot_tile_fp8 over R weight rows, fp8_tile_rows<M>(R) at a time (their outputs unchanged).
template <int M, int R, class MakeRows>
inline void dot_tile_fp8_split(const Fp8Elem* xq, const float* xs, int64_t k, MakeRows&& rows_from, const float* ws,
                               float* out) {
  constexpr int S = fp8_tile_rows<M>(R);
  static_assert(R % S == 0);
  if constexpr (S == R) {
    dot_tile_fp8<M, R>(xq, xs, k, rows_from(0), ws, out);
  } else {
    float part[M * S];
    for (int r0 = 0; r0 < R; r0 += S) {
      dot_tile_fp8<M, S>(xq, xs, k, rows_from(r0), ws, part);
      for (int a = 0; a < M; ++a)
        for (int r = 0; r < S; ++r) out[a * R + r0 + r] = part[a * S + r];
    }
  }
}

// Runs body(j0, rows) over blocks of kRows output features, in parallel.
template <class Body>
void for_row_blocks(int64_t n, int64_t k, Body&& body) {
  const int64_t n_blocks = (n + kRows - 1) / kRows;
  // About 64 KiB of weights per range at least, so small products stay on one thread.
  const int64_t grain = std::max<int64_t>(1, (64 << 10) / std::max<int64_t>(1, k * kRows));
  parallel_for(n_blocks, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b * kRows, std::min<int64_t>(kRows, n - b * kRows));
  }, grain);
}

// Calls tile.template operator()<M, R>(i, j0) for rows i..i+M-1 of the activations against weight
// rows j0..j0+R-1, covering the m x n product: activation tiles of kTileM rows stay in cache while
// every block of kRows weight rows passes over them (in parallel), M = kRowsAtOnce at a time.
// start_block(j0, rows), when given, runs on the same thread before the tiles of each block.
struct NoBlockStart {
  void operator()(int64_t, int) const {}
};
template <class Tile, class BlockStart = NoBlockStart>
void for_tiles(int64_t m, int64_t n, int64_t k, Tile&& tile, BlockStart&& start_block = {}) {
  for (int64_t i0 = 0; i0 < m; i0 += kTileM) {
    const int64_t i1 = std::min(m, i0 + kTileM);
    for_row_blocks(n, k, [&](int64_t j0, int rows) {
      start_block(j0, rows);
      if (rows == kRows) {
        for_row_groups(i0, i1, [&]<int M>(int64_t i) { tile.template operator()<M, kRows>(i, j0); });
      } else {
        for (int r = 0; r < rows; ++r)
          for_row_groups(i0, i1, [&]<int M>(int64_t i) { tile.template operator()<M, 1>(i, j0 + r); });
      }
    });
  }
}

template <class Rows>
void matmul_generic(const float* x, int64_t ldx, int64_t m, int64_t k, const Rows& w, int64_t n, float* y,
                    int64_t ldy, bool round_out) {
  // Rows i..i+M-1 of x against weight rows j0..j0+R-1.
  auto tile = [&]<int M, int R>(int64_t i, int64_t j0) {
    float out[M * R];
    dot_tile<M, R>(x + i * ldx, ldx, k, w, j0, out);
    for (int a = 0; a < M; ++a)
      for (int r = 0; r < R; ++r) y[(i + a) * ldy + j0 + r] = round_out ? round_bf16(out[a * R + r]) : out[a * R + r];
  };
  for_tiles(m, n, k, tile);
}

}  // namespace

void matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                 int64_t n, float* y, int64_t ldy, bool round_out_bf16) {
  matmul_generic(x, ldx, m, k, Bf16Rows{w, ldw}, n, y, ldy, round_out_bf16);
}

void matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                         int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                         bool round_out_bf16) {
  parallel_for(batch, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      matmul_bf16(x + b * bsx, ldx, m, k, w + b * bsw, ldw, n, y + b * bsy, ldy, round_out_bf16);
    }
  });
}

void matmul_f32(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y) {
  matmul_generic(x, k, m, k, F32Rows{w, k}, n, y, n, false);
}

namespace {

// matmul_fp8 of m rows already quantised: xq their e4m3 values (row stride k), xs their scales
// with kCodesUnscale folded in (row stride k / 128).
void matmul_fp8_quantised(const Fp8Elem* xq, const float* xs, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                          const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  const int64_t n_kb = k / kQuantBlock;
  // Rows i..i+M-1 of x against weight rows j0..j0+R-1. When the tile of activation rows holds more
  // than one group, each thread converts its block of weight rows once into a buffer (row r of the
  // block at r * k) and every group reads that; a single group converts as it goes.
  const bool convert_once = std::min(m, kTileM) > kRowsAtOnce;
  thread_local std::vector<Fp8Elem> converted;
  auto convert_block = [&](int64_t j0, int rows) {
    if (!convert_once) return;
    converted.resize(std::max(converted.size(), size_t(rows * k)));
    for (int r = 0; r < rows; ++r)
      for (int64_t c = 0; c < k; c += kFp8Step)
        store_elems(converted.data() + r * k + c, load_codes(w + (j0 + r) * ldw + c));
  };
  auto tile = [&]<int M, int R>(int64_t i, int64_t j0) {
    float out[M * R];
    const float* ws = scale_inv + (j0 / kQuantBlock) * ld_scale;
    if (convert_once) {
      const Fp8Elem* rows = converted.data() + (j0 % kRows) * k;  // blocks start at multiples of kRows
      dot_tile_fp8_split<M, R>(
          xq + i * k, xs + i * n_kb, k,
          [&](int r0) {
            return Fp8Converted{rows + r0 * k, k};
          },
          ws, out);
    } else {
      dot_tile_fp8_split<M, R>(
          xq + i * k, xs + i * n_kb, k,
          [&](int r0) {
            return Fp8Codes{w + (j0 + r0) * ldw, ldw};
          },
          ws, out);
    }
    for (int a = 0; a < M; ++a)
      for (int r = 0; r < R; ++r) y[(i + a) * ldy + j0 + r] = out[a * R + r];
  };
  for_tiles(m, n, k, tile, convert_block);
}

// Row i of the quantised rows for matmul_fp8_quantised: its codes' values into xq, its scales times
// kCodesUnscale into xs.
void widen_codes(const uint8_t* codes, const float* scales, int64_t k, Fp8Elem* xq, float* xs) {
  for (int64_t c = 0; c < k; ++c) xq[c] = to_elem(fp8_e4m3_to_float(codes[c]));
  for (int64_t kb = 0; kb < k / kQuantBlock; ++kb) xs[kb] = scales[kb] * kCodesUnscale;
}

}  // namespace

void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  DSA_KERNEL_REQUIRE(k % kQuantBlock == 0, "matmul_fp8 needs k to be a multiple of 128");
  const int64_t n_kb = k / kQuantBlock;
  // Quantise the activations once.
  thread_local std::vector<Fp8Elem> xq;
  thread_local std::vector<float> xs, row_scales;
  thread_local std::vector<uint8_t> codes;
  xq.resize(static_cast<size_t>(m * k));
  xs.resize(static_cast<size_t>(m * n_kb));
  codes.resize(static_cast<size_t>(k));
  row_scales.resize(static_cast<size_t>(n_kb));
  for (int64_t i = 0; i < m; ++i) {
    act_quant(x + i * ldx, k, kQuantBlock, codes.data(), row_scales.data());
    widen_codes(codes.data(), row_scales.data(), k, xq.data() + i * k, xs.data() + i * n_kb);
  }
  matmul_fp8_quantised(xq.data(), xs.data(), m, k, w, ldw, scale_inv, ld_scale, n, y, ldy);
}

void matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                        const int32_t* first, int64_t n_groups, const Fp8Matrix* experts, int64_t n, float* y,
                        int64_t ldy) {
  DSA_KERNEL_REQUIRE(k % kQuantBlock == 0, "matmul_fp8_grouped needs k to be a multiple of 128");
  const int64_t n_kb = k / kQuantBlock;
  thread_local std::vector<Fp8Elem> xq;
  thread_local std::vector<float> xs;
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t r0 = first[g], rows = first[g + 1] - r0;
    if (rows <= 0) continue;
    const Fp8Matrix& e = experts[g];
    DSA_KERNEL_REQUIRE(e.w != nullptr, "matmul_fp8_grouped: a group with rows has no weights");
    xq.resize(static_cast<size_t>(rows * k));
    xs.resize(static_cast<size_t>(rows * n_kb));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t src = row_map ? row_map[r0 + r] : r0 + r;
      widen_codes(codes + src * k, scales + src * n_kb, k, xq.data() + r * k, xs.data() + r * n_kb);
    }
    matmul_fp8_quantised(xq.data(), xs.data(), rows, k, e.w, k, e.scale_inv, n_kb, n, y + r0 * ldy, ldy);
  }
}

void matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs, int rank,
                       int n_ranks, const Fp8Matrix* experts, int64_t k, int64_t n, float* y, int64_t ldy) {
  DSA_KERNEL_REQUIRE(x_div >= 1 && n_ranks >= 1, "matmul_fp8_routed needs x_div >= 1 and n_ranks >= 1");
  for (int64_t p = 0; p < n_pairs; ++p) {
    const int32_t e = idx[p];
    const Fp8Matrix& m = experts[e];
    float* out = y + p * ldy;
    if (e % n_ranks != rank || !m.w) {
      std::fill(out, out + n, 0.0f);
      continue;
    }
    matmul_fp8(x + (p / x_div) * ldx, ldx, 1, k, m.w, k, m.scale_inv, (k + kQuantBlock - 1) / kQuantBlock, n, out,
               ldy);
  }
}

void matmul_bf16_scalar(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                        int64_t n, float* y, int64_t ldy, bool round_out_bf16) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t c = 0; c < k; ++c) acc += double(x[i * ldx + c]) * double(bf16_to_float(w[j * ldw + c]));
      y[i * ldy + j] = round_out_bf16 ? round_bf16(float(acc)) : float(acc);
    }
}

void matmul_fp8_scalar(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                       const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  DSA_KERNEL_REQUIRE(k % kQuantBlock == 0, "matmul_fp8 needs k to be a multiple of 128");
  const int64_t n_kb = k / kQuantBlock;
  std::vector<uint8_t> codes(static_cast<size_t>(k));
  std::vector<float> sa(static_cast<size_t>(n_kb));
  for (int64_t i = 0; i < m; ++i) {
    act_quant(x + i * ldx, k, kQuantBlock, codes.data(), sa.data());
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t kb = 0; kb < n_kb; ++kb) {
        double part = 0.0;  // exact: products of e4m3 values summed in fp64
        for (int64_t c = kb * kQuantBlock; c < (kb + 1) * kQuantBlock; ++c)
          part += double(fp8_e4m3_to_float(codes[c])) * double(fp8_e4m3_to_float(w[j * ldw + c]));
        acc += double(float(part)) * double(sa[kb]) * double(scale_inv[(j / kQuantBlock) * ld_scale + kb]);
      }
      y[i * ldy + j] = round_bf16(float(acc));
    }
  }
}

}  // namespace dsa::cpu
