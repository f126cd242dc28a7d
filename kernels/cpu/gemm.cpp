// Matrix products for checkpoint linears (see gemm.hpp).
// Layout of the work: output features are cut into blocks of kRows weight rows, spread over threads.
// Few activation rows (decode): each block's weights are converted on the fly and streamed once.
// More rows than one group of kRowsAtOnce (batched decode, prefill): each FP8 block is converted
// once per tile of kTileM activation rows into an fp32 buffer, then reused by every group.
#include "kernels/cpu/gemm.hpp"

#include <algorithm>
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
constexpr int64_t kTileM = 32;    // activation rows kept in cache while the weight blocks pass
constexpr int kRowsAtOnce = 4;    // activation rows sharing each widened weight vector
constexpr int kPrefetchMaxRows = 4;  // tiles of up to this many activation rows prefetch weights

struct Bf16Rows {
  const uint16_t* w;
  int64_t ld;
  vf load(int64_t r, int64_t c) const { return simd::load_bf16(w + r * ld + c); }
  static constexpr int64_t kLineElems = 64 / sizeof(*w);
  void prefetch(int64_t r, int64_t c) const { __builtin_prefetch(w + r * ld + c); }
  float at(int64_t r, int64_t c) const { return bf16_to_float(w[r * ld + c]); }
};
struct F32Rows {
  const float* w;
  int64_t ld;
  vf load(int64_t r, int64_t c) const { return simd::load(w + r * ld + c); }
  static constexpr int64_t kLineElems = 64 / sizeof(*w);
  void prefetch(int64_t r, int64_t c) const { __builtin_prefetch(w + r * ld + c); }
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

// FP8 weight rows for dot_tile_fp8: e4m3 codes widened per vector (simd::load_fp8), or the same
// values already widened into an fp32 buffer (one row of k per weight row), which gives the same
// numbers with the conversion paid once for many activation rows.
struct Fp8Codes {
  const uint8_t* w;
  int64_t ld;
  vf load(int r, int64_t c) const { return simd::load_fp8(w + r * ld + c); }
  // The same columns of the next block of kRows weight rows, a cache line at a time.
  void prefetch_next(int r, int64_t c0) const {
    for (int64_t c = c0; c < c0 + kQuantBlock; c += 64) __builtin_prefetch(w + (r + kRows) * ld + c);
  }
};
struct Fp8Widened {
  const float* w;  // [R, k]: load_fp8 of the codes
  int64_t ld;
  vf load(int r, int64_t c) const { return simd::load(w + r * ld + c); }
  void prefetch_next(int, int64_t) const {}
};

// out[i * R + r] = bf16(sum_kb (xq_i[kb] . w_r[kb]) * xs_i[kb] * ws[kb]) for M activation rows and
// R weight rows: the FP8 linear's block-scaled dot. As the reference: each block's dot is an fp32
// sum, scaled and accumulated in fp64. xq: quantised activations as fp32 values (row stride k); xs:
// their scales times kFp8Unscale (row stride k / 128); w: the R weight rows (Fp8Codes or
// Fp8Widened), each vector used by all M activation rows; ws: the weight scale row of the 128-row
// group holding these R rows. Every (i, r) gets the same operations in the same order whatever M is
// and whichever weight source, so a row's result does not depend on which rows it is batched with.
// k % 128 == 0.
template <int M, int R, class W>
inline void dot_tile_fp8(const float* xq, const float* xs, int64_t k, const W& w, const float* ws, float* out) {
  const int64_t n_kb = k / kQuantBlock;
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
    for (int64_t c = c0; c < c0 + kQuantBlock; c += kWidth) {
      vf wv[R];
      for (int r = 0; r < R; ++r) wv[r] = w.load(r, c);
      for (int i = 0; i < M; ++i) {
        const vf xv = simd::load(xq + i * k + c);
        for (int r = 0; r < R; ++r) part[i][r] = simd::fma(xv, wv[r], part[i][r]);
      }
    }
    for (int i = 0; i < M; ++i) {
      const float xsi = xs[i * n_kb + kb];
      for (int r = 0; r < R; ++r) acc[i][r] += double(simd::hsum(part[i][r])) * double(xsi * ws[kb]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) out[i * R + r] = round_bf16(float(acc[i][r]));
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

// matmul_fp8 of m rows already quantised: xq their e4m3 values as fp32 (row stride k), xs their
// scales with the fp8 unscale folded in (row stride k / 128).
void matmul_fp8_quantised(const float* xq, const float* xs, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                          const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  const int64_t n_kb = k / kQuantBlock;
  // Rows i..i+M-1 of x against weight rows j0..j0+R-1. When the tile of activation rows holds more
  // than one group, each thread widens its block of weight rows once into an fp32 buffer (row r of
  // the block at r * k) and every group reads that; a single group widens as it goes.
  const bool widen_once = std::min(m, kTileM) > kRowsAtOnce;
  thread_local std::vector<float> widened;
  auto widen_block = [&](int64_t j0, int rows) {
    if (!widen_once) return;
    widened.resize(std::max(widened.size(), size_t(rows * k)));
    for (int r = 0; r < rows; ++r)
      for (int64_t c = 0; c < k; c += kWidth)
        simd::store(widened.data() + r * k + c, simd::load_fp8(w + (j0 + r) * ldw + c));
  };
  auto tile = [&]<int M, int R>(int64_t i, int64_t j0) {
    float out[M * R];
    const float* ws = scale_inv + (j0 / kQuantBlock) * ld_scale;
    if (widen_once) {
      const float* rows = widened.data() + (j0 % kRows) * k;  // blocks start at multiples of kRows
      // Two weight rows at a time: the widened path has no conversions to share, and 4 x 2
      // accumulators stay in registers where 4 x 4 spill. Each output's operations are unchanged.
      if constexpr (R % 2 == 0) {
        float half[M * 2];
        for (int r0 = 0; r0 < R; r0 += 2) {
          dot_tile_fp8<M, 2>(xq + i * k, xs + i * n_kb, k, Fp8Widened{rows + r0 * k, k}, ws, half);
          for (int a = 0; a < M; ++a)
            for (int r = 0; r < 2; ++r) out[a * R + r0 + r] = half[a * 2 + r];
        }
      } else {
        dot_tile_fp8<M, R>(xq + i * k, xs + i * n_kb, k, Fp8Widened{rows, k}, ws, out);
      }
    } else {
      dot_tile_fp8<M, R>(xq + i * k, xs + i * n_kb, k, Fp8Codes{w + j0 * ldw, ldw}, ws, out);
    }
    for (int a = 0; a < M; ++a)
      for (int r = 0; r < R; ++r) y[(i + a) * ldy + j0 + r] = out[a * R + r];
  };
  for_tiles(m, n, k, tile, widen_block);
}

// Row i of the quantised rows for matmul_fp8_quantised: its codes as fp32 values into xq, its
// scales times the fp8 unscale into xs.
void widen_codes(const uint8_t* codes, const float* scales, int64_t k, float* xq, float* xs) {
  for (int64_t c = 0; c < k; ++c) xq[c] = fp8_e4m3_to_float(codes[c]);
  for (int64_t kb = 0; kb < k / kQuantBlock; ++kb) xs[kb] = scales[kb] * simd::kFp8Unscale;
}

}  // namespace

void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  DSA_KERNEL_REQUIRE(k % kQuantBlock == 0, "matmul_fp8 needs k to be a multiple of 128");
  const int64_t n_kb = k / kQuantBlock;
  // Quantise the activations once.
  thread_local std::vector<float> xq, xs, row_scales;
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
  thread_local std::vector<float> xq, xs;
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
