// Matrix products for checkpoint linears (see gemm.hpp).
// Layout of the work: output features are cut into blocks of kRows weight rows, spread over threads.
// Few activation rows (decode): each block's weights are converted on the fly and streamed once.
// Many rows (prefill): each block is converted once per tile of kTileM activation rows into an fp32
// buffer, then reused for the whole tile.
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
constexpr int64_t kTileM = 32;    // activation rows sharing one converted weight block
constexpr int64_t kDirectM = 4;   // up to this many rows, weights are converted on the fly

struct Bf16Rows {
  const uint16_t* w;
  int64_t ld;
  vf load(int64_t r, int64_t c) const { return simd::load_bf16(w + r * ld + c); }
  float at(int64_t r, int64_t c) const { return bf16_to_float(w[r * ld + c]); }
};
struct Fp8Rows {  // values times 2^-8, see simd::load_fp8
  const uint8_t* w;
  int64_t ld;
  vf load(int64_t r, int64_t c) const { return simd::load_fp8(w + r * ld + c); }
};
struct F32Rows {
  const float* w;
  int64_t ld;
  vf load(int64_t r, int64_t c) const { return simd::load(w + r * ld + c); }
  float at(int64_t r, int64_t c) const { return w[r * ld + c]; }
};

// out[r] = x . w[j0 + r] for r < R (fp32 accumulation; any k).
template <int R, class Rows>
inline void dot_rows(const float* x, int64_t k, const Rows& w, int64_t j0, float* out) {
  vf acc[R];
  for (int r = 0; r < R; ++r) acc[r] = simd::zero();
  int64_t c = 0;
  for (; c + kWidth <= k; c += kWidth) {
    const vf xv = simd::load(x + c);
    for (int r = 0; r < R; ++r) acc[r] = simd::fma(xv, w.load(j0 + r, c), acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    out[r] = simd::hsum(acc[r]);
    for (int64_t t = c; t < k; ++t) out[r] += x[t] * w.at(j0 + r, t);
  }
}

// out[r] = bf16(sum_kb (xq[kb] . w[j0 + r][kb]) * xs[kb] * ws[kb]): the FP8 linear's block-scaled
// dot. As the reference: each block's dot is an fp32 sum, scaled and accumulated in fp64.
// xq: quantised activations as fp32 values; xs: their scales times kFp8Unscale; ws: the weight
// scale row of the 128-row group holding j0..j0+R-1. k % 128 == 0.
template <int R, class Rows>
inline void dot_rows_fp8(const float* xq, const float* xs, int64_t k, const Rows& w, int64_t j0,
                         const float* ws, float* out) {
  double acc[R] = {};
  for (int64_t kb = 0; kb < k / kQuantBlock; ++kb) {
    vf part[R];
    for (int r = 0; r < R; ++r) part[r] = simd::zero();
    const int64_t c0 = kb * kQuantBlock;
    for (int64_t c = c0; c < c0 + kQuantBlock; c += kWidth) {
      const vf xv = simd::load(xq + c);
      for (int r = 0; r < R; ++r) part[r] = simd::fma(xv, w.load(j0 + r, c), part[r]);
    }
    const double s = double(xs[kb] * ws[kb]);
    for (int r = 0; r < R; ++r) acc[r] += double(simd::hsum(part[r])) * s;
  }
  for (int r = 0; r < R; ++r) out[r] = round_bf16(float(acc[r]));
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

template <class Rows>
void matmul_generic(const float* x, int64_t ldx, int64_t m, int64_t k, const Rows& w, int64_t n, float* y,
                    int64_t ldy, bool round_out) {
  auto emit = [&](float* out, int64_t i, int64_t j0, int rows) {
    for (int r = 0; r < rows; ++r) y[i * ldy + j0 + r] = round_out ? round_bf16(out[r]) : out[r];
  };
  if (m <= kDirectM) {
    for_row_blocks(n, k, [&](int64_t j0, int rows) {
      float out[kRows];
      for (int64_t i = 0; i < m; ++i) {
        if (rows == kRows) {
          dot_rows<kRows>(x + i * ldx, k, w, j0, out);
        } else {
          for (int r = 0; r < rows; ++r) dot_rows<1>(x + i * ldx, k, w, j0 + r, out + r);
        }
        emit(out, i, j0, rows);
      }
    });
    return;
  }
  for (int64_t i0 = 0; i0 < m; i0 += kTileM) {
    const int64_t i1 = std::min(m, i0 + kTileM);
    for_row_blocks(n, k, [&](int64_t j0, int rows) {
      thread_local std::vector<float> buf;
      buf.resize(static_cast<size_t>(kRows * k));
      for (int r = 0; r < rows; ++r) {
        int64_t c = 0;
        for (; c + kWidth <= k; c += kWidth) simd::store(buf.data() + r * k + c, w.load(j0 + r, c));
        for (; c < k; ++c) buf[r * k + c] = w.at(j0 + r, c);
      }
      const F32Rows wb{buf.data(), k};
      float out[kRows];
      for (int64_t i = i0; i < i1; ++i) {
        if (rows == kRows) {
          dot_rows<kRows>(x + i * ldx, k, wb, 0, out);
        } else {
          for (int r = 0; r < rows; ++r) dot_rows<1>(x + i * ldx, k, wb, r, out + r);
        }
        emit(out, i, j0, rows);
      }
    });
  }
}

}  // namespace

void matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                 int64_t n, float* y, int64_t ldy, bool round_out_bf16) {
  matmul_generic(x, ldx, m, k, Bf16Rows{w, ldw}, n, y, ldy, round_out_bf16);
}

void matmul_f32(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y) {
  matmul_generic(x, k, m, k, F32Rows{w, k}, n, y, n, false);
}

void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy) {
  DSA_KERNEL_REQUIRE(k % kQuantBlock == 0, "matmul_fp8 needs k to be a multiple of 128");
  const int64_t n_kb = k / kQuantBlock;
  // Quantise the activations once: e4m3 values as fp32, scales with the fp8 unscale folded in.
  thread_local std::vector<float> xq, xs;
  thread_local std::vector<uint8_t> codes;
  xq.resize(static_cast<size_t>(m * k));
  xs.resize(static_cast<size_t>(m * n_kb));
  codes.resize(static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    act_quant(x + i * ldx, k, kQuantBlock, codes.data(), xs.data() + i * n_kb);
    for (int64_t c = 0; c < k; ++c) xq[i * k + c] = fp8_e4m3_to_float(codes[c]);
    for (int64_t kb = 0; kb < n_kb; ++kb) xs[i * n_kb + kb] *= simd::kFp8Unscale;
  }
  const float* xqp = xq.data();
  const float* xsp = xs.data();
  auto row_block = [&](const auto& rows_src, int64_t j_src, int64_t j0, int rows, int64_t i) {
    float out[kRows];
    const float* ws = scale_inv + (j0 / kQuantBlock) * ld_scale;
    if (rows == kRows) {
      dot_rows_fp8<kRows>(xqp + i * k, xsp + i * n_kb, k, rows_src, j_src, ws, out);
    } else {
      for (int r = 0; r < rows; ++r) dot_rows_fp8<1>(xqp + i * k, xsp + i * n_kb, k, rows_src, j_src + r, ws, out + r);
    }
    for (int r = 0; r < rows; ++r) y[i * ldy + j0 + r] = out[r];
  };
  const Fp8Rows wrows{w, ldw};
  if (m <= kDirectM) {
    for_row_blocks(n, k, [&](int64_t j0, int rows) {
      for (int64_t i = 0; i < m; ++i) row_block(wrows, j0, j0, rows, i);
    });
    return;
  }
  for (int64_t i0 = 0; i0 < m; i0 += kTileM) {
    const int64_t i1 = std::min(m, i0 + kTileM);
    for_row_blocks(n, k, [&](int64_t j0, int rows) {
      thread_local std::vector<float> buf;
      buf.resize(static_cast<size_t>(kRows * k));
      for (int r = 0; r < rows; ++r)
        for (int64_t c = 0; c < k; c += kWidth) simd::store(buf.data() + r * k + c, wrows.load(j0 + r, c));
      const F32Rows wb{buf.data(), k};
      for (int64_t i = i0; i < i1; ++i) row_block(wb, 0, j0, rows, i);
    });
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
