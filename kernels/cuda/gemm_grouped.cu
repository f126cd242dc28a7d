// The FP8 GEMM of quantised rows on the tensor cores, for many products at once (see
// gemm_grouped.cuh): the routed experts of a prefill chunk in one launch per projection, and
// matmul_fp8's longer calls where cuBLASLt does not take them.
//
// A block computes 64 rows of one group by 128 output columns (one weight-scale row), eight warps
// of 32 x 32. Per 128-block of k (one K step, one pair of scales) the block's codes are copied into
// shared memory asynchronously, 4 stages ahead: 64 rows of the quantised x (through the row map),
// 128 rows of W and the 64 rows' scales. Rows are 128 bytes with their 16-byte chunks swapped
// within halves on odd rows (chunk c of row r at c ^ 4 (r & 1)), so the fragment loads below hit
// 32 different banks per quarter warp.
//
// Fragments are read as in gemv_mma.cu: lane (g, t) loads 16 consecutive codes of its row at 16t
// of each 64-byte step, one load per row, and A and B share that permutation of k. On sm_89 and
// later two m16n8k32 e4m3 products per step; before, the codes become fp16 (each times 2^-8,
// exactly) for four m16n8k16 products, the 2^-16 folded into the scales. Each K step's sums are
// scaled by the row's and the weight block's scales into the fp32 total, as the reference does.
#include "kernels/cuda/async_copy.cuh"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/gemm_grouped.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/quant.hpp"

namespace dsa::cuda {
namespace detail {
namespace {

constexpr int kBM = 64, kBN = 128, kBK = dev::kQuantBlock;  // a K step is one scale block
constexpr int kThreads = 256;                               // 8 warps: 2 (rows) x 4 (columns)
constexpr int kStages = 4;
constexpr int kStageBytes = (kBM + kBN) * kBK + kBM * int(sizeof(float));
constexpr int kSmemBytes = kStages * kStageBytes;  // 99,328: two blocks per SM on sm_90

// What a launch multiplies. The scale of quantised row r and K step kb is
// scales[r * scale_row + kb * scale_kb] (act_quant's rows: k / 128 and 1; act_quant_rows': 1 and m).
struct Operands {
  const uint8_t* codes;
  const float* scales;
  int64_t k, scale_row, scale_kb;
  const int32_t* row_map;  // row r of a group reads quantised row row_map[r]; null: row r
  // Grouped: group g's rows [first[g], first[g + 1]) times experts[g] (rows k apart, scale rows k /
  // 128 apart). first null: one group of m rows times w.
  const int32_t* first;
  int32_t n_groups;
  const cpu::Fp8Matrix* experts;
  int64_t m;
  const uint8_t* w;
  const float* scale_inv;
  int64_t ldw, ld_scale;
  int64_t n;
  float* y;
  int64_t ldy;
};

// Byte offset of 16-byte chunk c of row r in a stage's 128-byte rows.
__device__ __forceinline__ int swizzled(int r, int c) { return r * kBK + ((c ^ ((r & 1) << 2)) << 4); }

__device__ __forceinline__ uint4 lds128(const uint8_t* p) { return *reinterpret_cast<const uint4*>(p); }

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The factor the products of a K step carry: 1 for e4m3 products, 2^16 undone for fp16 ones.
__device__ __forceinline__ float product_unscale() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  return 1.0f;
#else
  return 65536.0f;
#endif
}

// part[mt] += the products of one 64-byte step for one column tile: a[mt][0] / a[mt][1] the codes
// of A's rows g and g + 8 of row tile mt, b those of B's row (output column) g.
__device__ __forceinline__ void step_products(float (&part)[2][4], const uint4 (&a)[2][2], const uint4& b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
      dev::mma_e4m3(
          part[mt],
          {word(a[mt][0], 2 * h), word(a[mt][1], 2 * h), word(a[mt][0], 2 * h + 1), word(a[mt][1], 2 * h + 1)},
          {word(b, 2 * h), word(b, 2 * h + 1)});
#else
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    uint32_t bl, bh;
    dev::e4m3x4_to_f16x2(word(b, q), bl, bh);
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      uint32_t l0, h0, l1, h1;
      dev::e4m3x4_to_f16x2(word(a[mt][0], q), l0, h0);
      dev::e4m3x4_to_f16x2(word(a[mt][1], q), l1, h1);
      dev::mma_f16(part[mt], {l0, l1, h0, h1}, {bl, bh});
    }
  }
#endif
}

// blockIdx.x: the 64-row tile (over all groups in order), blockIdx.y: the 128 output columns.
__global__ void __launch_bounds__(kThreads, 2) gemm_fp8_codes_kernel(Operands op) {
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ int64_t s_row0, s_row_end;
  __shared__ int s_group;
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int warp = tid >> 5, wm = warp >> 2, wn = warp & 3;

  // The tile's group: warp 0 counts the tiles of 32 groups at a time.
  if (warp == 0) {
    if (!op.first) {
      if (lane == 0) {
        s_group = 0;
        s_row0 = int64_t(blockIdx.x) * kBM;
        s_row_end = op.m;
      }
    } else {
      const int64_t want = blockIdx.x;
      int64_t before = 0;  // tiles of the groups already passed
      int found = -1;
      for (int g0 = 0; g0 < op.n_groups && found < 0; g0 += 32) {
        const int grp = g0 + lane;
        const int32_t lo = grp < op.n_groups ? op.first[grp] : 0, hi = grp < op.n_groups ? op.first[grp + 1] : 0;
        const int tiles = hi > lo ? (hi - lo + kBM - 1) / kBM : 0;
        int incl = tiles;  // inclusive prefix over the lanes
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
          const int v = __shfl_up_sync(0xffffffffu, incl, o);
          if (lane >= o) incl += v;
        }
        const bool mine = tiles > 0 && want >= before + incl - tiles && want < before + incl;
        const unsigned hit = __ballot_sync(0xffffffffu, mine);
        if (hit) {
          found = g0 + __ffs(hit) - 1;
          if (mine) {
            s_group = grp;
            s_row0 = lo + (want - (before + incl - tiles)) * kBM;
            s_row_end = hi;
          }
        }
        before += __shfl_sync(0xffffffffu, incl, 31);
      }
      if (found < 0 && lane == 0) s_group = -1;
    }
  }
  __syncthreads();
  const int group = s_group;
  if (group < 0) return;  // past the last tile (the grid is sized exactly; kept for safety)
  const int64_t row0 = s_row0, row_end = s_row_end;
  const int64_t j0 = int64_t(blockIdx.y) * kBN;
  const uint8_t* w = op.w;
  const float* scale_inv = op.scale_inv;
  int64_t ldw = op.ldw, ld_scale = op.ld_scale;
  if (op.first) {
    const cpu::Fp8Matrix e = op.experts[group];
    w = e.w;
    scale_inv = e.scale_inv;
    ldw = op.k;
    ld_scale = op.k / kBK;
  }
  const float* w_scales = scale_inv + (j0 / kBK) * ld_scale;  // the block's 128 columns share a scale row

  // This thread's copies of every stage: A chunks tid and tid + 256 (rows tid / 8 and + 32), B
  // chunks tid + 256q (rows tid / 8 + 32q), and for tid < 64 the scale of row tid.
  const int chunk = tid & 7, r_base = tid >> 3;
  const auto src_row = [&](int64_t row) -> int64_t { return op.row_map ? op.row_map[row] : row; };
  const uint8_t* a_src[2];
  bool a_ok[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t row = row0 + r_base + 32 * i;
    a_ok[i] = row < row_end;
    a_src[i] = op.codes + src_row(a_ok[i] ? row : row0) * op.k + chunk * 16;
  }
  // B's rows past n read row j0 instead (zeros are stored, but the address must be valid).
  const uint8_t* b_src = w + (j0 + r_base) * ldw + chunk * 16;
  const uint8_t* b_row_j0 = w + j0 * ldw + chunk * 16;
  const int64_t b_rows_left = op.n - j0 - r_base;  // B chunk i is valid while 32 i < this
  const bool s_ok = tid < kBM && row0 + tid < row_end;
  const float* s_src = op.scales + src_row(s_ok ? row0 + tid : row0) * op.scale_row;

  const int steps = int(op.k / kBK);
  const auto load = [&](int stage, int kb) {
    uint8_t* sa = smem + stage * kStageBytes;
    uint8_t* sb = sa + kBM * kBK;
    float* ss = reinterpret_cast<float*>(sb + kBN * kBK);
    const int at = kb * kBK;
#pragma unroll
    for (int i = 0; i < 2; ++i) dev::cp_async16(sa + swizzled(r_base + 32 * i, chunk), a_src[i] + at, a_ok[i]);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const bool ok = 32 * i < b_rows_left;
      dev::cp_async16(sb + swizzled(r_base + 32 * i, chunk), (ok ? b_src + 32 * i * ldw : b_row_j0) + at, ok);
    }
    if (tid < kBM) dev::cp_async4(ss + tid, s_src + int64_t(kb) * op.scale_kb, s_ok);
  };

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s, s);
    dev::cp_async_commit();
  }
  float acc[2][4][4] = {};
  for (int kb = 0; kb < steps; ++kb) {
    dev::cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kb has landed, and every warp is done with the stage loaded next
    if (kb + kStages - 1 < steps) load((kb + kStages - 1) % kStages, kb + kStages - 1);
    dev::cp_async_commit();
    const float s_w = w_scales[kb] * product_unscale();
    const uint8_t* sa = smem + (kb % kStages) * kStageBytes;
    const uint8_t* sb = sa + kBM * kBK;
    const float* ss = reinterpret_cast<const float*>(sb + kBN * kBK);
    float part[4][2][4] = {};  // [nt][mt]
#pragma unroll
    for (int step = 0; step < 2; ++step) {  // 64 codes each
      uint4 a[2][2];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const int r = wm * 32 + mt * 16 + g;
        a[mt][0] = lds128(sa + swizzled(r, 4 * step + t));
        a[mt][1] = lds128(sa + swizzled(r + 8, 4 * step + t));
      }
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
        step_products(part[nt], a, lds128(sb + swizzled(wn * 32 + nt * 8 + g, 4 * step + t)));
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      const float s_lo = ss[wm * 32 + mt * 16 + g] * s_w, s_hi = ss[wm * 32 + mt * 16 + g + 8] * s_w;
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        acc[mt][nt][0] = fmaf(part[nt][mt][0], s_lo, acc[mt][nt][0]);
        acc[mt][nt][1] = fmaf(part[nt][mt][1], s_lo, acc[mt][nt][1]);
        acc[mt][nt][2] = fmaf(part[nt][mt][2], s_hi, acc[mt][nt][2]);
        acc[mt][nt][3] = fmaf(part[nt][mt][3], s_hi, acc[mt][nt][3]);
      }
    }
  }
  dev::cp_async_wait<0>();

#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t row = row0 + wm * 32 + mt * 16 + g + (e >= 2 ? 8 : 0);
        const int64_t col = j0 + wn * 32 + nt * 8 + 2 * t + (e & 1);
        if (row < row_end && col < op.n) op.y[row * op.ldy + col] = dev::round_bf16(acc[mt][nt][e]);
      }
}

// Before sm_80: a thread per output, each group's row found by a binary search over first.
// blockIdx.x: the row, blockIdx.y: 128 columns.
__global__ void gemm_fp8_codes_plain_kernel(Operands op, int64_t row_base) {
  const int64_t row = row_base + blockIdx.x, col = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (col >= op.n) return;
  int lo = 0, hi = op.n_groups;  // the group g with first[g] <= row < first[g + 1]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (op.first[mid] <= row)
      lo = mid;
    else
      hi = mid;
  }
  const cpu::Fp8Matrix e = op.experts[lo];
  const int64_t q = op.row_map ? op.row_map[row] : row, blocks = op.k / kBK;
  const uint8_t* xr = op.codes + q * op.k;
  const uint8_t* wr = e.w + col * op.k;
  float acc = 0.0f;
  for (int64_t kb = 0; kb < blocks; ++kb) {
    float dot = 0.0f;
    for (int c = 0; c < kBK; ++c)
      dot = fmaf(dev::fp8_to_float(xr[kb * kBK + c]), dev::fp8_to_float(wr[kb * kBK + c]), dot);
    acc = fmaf(dot, op.scales[q * op.scale_row + kb * op.scale_kb] * e.scale_inv[(col / kBK) * blocks + kb], acc);
  }
  op.y[row * op.ldy + col] = dev::round_bf16(acc);
}

void launch(const Operands& op, int64_t tiles, cudaStream_t stream) {
  DSA_CUDA_REQUIRE((op.n + kBN - 1) / kBN <= 65535, "the FP8 GEMM takes at most 65535 * 128 output columns");
  DSA_CUDA_REQUIRE(tiles <= INT32_MAX, "the FP8 GEMM takes fewer row tiles");
  dev::allow_dynamic_smem(gemm_fp8_codes_kernel, kSmemBytes);
  const dim3 grid(unsigned(tiles), unsigned((op.n + kBN - 1) / kBN));
  gemm_fp8_codes_kernel<<<grid, kThreads, kSmemBytes, stream>>>(op);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool gemm_fp8_codes(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                    const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy, cudaStream_t stream) {
  if (m <= 0 || n <= 0 || k % kBK != 0 || ldw % 16 != 0 || !dev::aligned16(w) || !dev::mma_available()) return false;
  // The quantised rows, from the stream's memory pool: codes [m, k], then scales [k / 128, m].
  const size_t codes_bytes = size_t(m) * size_t(k);
  uint8_t* codes = dev::pool_scratch<uint8_t>(codes_bytes + size_t(k / kBK) * size_t(m) * sizeof(float), stream);
  float* scales = reinterpret_cast<float*>(codes + codes_bytes);  // k % 128 == 0: 16-byte aligned
  act_quant_rows(x, ldx, m, m, k, codes, scales, stream);
  Operands op{};
  op.codes = codes;
  op.scales = scales;
  op.k = k;
  op.scale_row = 1;
  op.scale_kb = m;
  op.m = m;
  op.w = w;
  op.scale_inv = scale_inv;
  op.ldw = ldw;
  op.ld_scale = ld_scale;
  op.n = n;
  op.y = y;
  op.ldy = ldy;
  launch(op, (m + kBM - 1) / kBM, stream);
  DSA_CUDA_CHECK(cudaFreeAsync(codes, stream));
  return true;
}

}  // namespace detail

void matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                        const int32_t* first, const int32_t* first_host, int64_t n_groups,
                        const cpu::Fp8Matrix* experts, int64_t n, float* y, int64_t ldy, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(k > 0 && k % dev::kQuantBlock == 0, "matmul_fp8_grouped needs k to be a multiple of 128");
  DSA_CUDA_REQUIRE(n_groups >= 0 && n_groups < INT32_MAX, "matmul_fp8_grouped: n_groups out of range");
  DSA_CUDA_REQUIRE(dev::aligned16(codes), "matmul_fp8_grouped needs the codes 16-byte aligned");
  int64_t tiles = 0;
  for (int64_t g = 0; g < n_groups; ++g) {
    const int64_t rows = int64_t(first_host[g + 1]) - first_host[g];
    DSA_CUDA_REQUIRE(rows >= 0, "matmul_fp8_grouped needs first ascending");
    tiles += (rows + detail::kBM - 1) / detail::kBM;
  }
  if (tiles == 0 || n <= 0) return;
  detail::Operands op{};
  op.codes = codes;
  op.scales = scales;
  op.k = k;
  op.scale_row = k / dev::kQuantBlock;
  op.scale_kb = 1;
  op.row_map = row_map;
  op.first = first;
  op.n_groups = int32_t(n_groups);
  op.experts = experts;
  op.n = n;
  op.y = y;
  op.ldy = ldy;
  if (dev::mma_available()) {
    detail::launch(op, tiles, stream);
    return;
  }
  const int64_t rows = first_host[n_groups] - first_host[0];
  DSA_CUDA_REQUIRE((n + 127) / 128 <= 65535 && rows <= INT32_MAX, "matmul_fp8_grouped: too large a product");
  detail::gemm_fp8_codes_plain_kernel<<<dim3(unsigned(rows), unsigned((n + 127) / 128)), 128, 0, stream>>>(
      op, first_host[0]);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
