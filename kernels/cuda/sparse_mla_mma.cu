// Sparse MLA attention on the tensor cores (see attention.hpp, sparse_mla_decode_mma_batched).
//
// In the absorbed form every head of a query attends to the same selected latent records, so a
// query's attention is two products with the heads as rows: scores = Q [heads, D] . K^T [D, keys]
// and output = P [heads, keys] . V [keys, kv_lora], with K the records (c_kv then k_pe, D = kv_lora
// + rope) and V their c_kv. A block takes one query, 16, 32 or 64 of its heads and one split of its
// selection, and walks the split 32 records at a time:
//   1. the records are decoded into shared memory as bf16 (exact: fp8 codes times power-of-two
//      scales, bf16 rope), row by row for the scores and transposed for the weighted sum;
//   2. the (16 heads x 8 keys) score tiles are mma.sync products over D, spread over the warps
//      (q_abs and q_pe hold bf16 values, so every product is exact; sums in fp32);
//   3. an online softmax in fp32, a warp per head: the running max and sum, this chunk's weights
//      (split into a bf16 value and a bf16 remainder for the next product) and the factor rescaling
//      the earlier ones;
//   4. each warp adds its head tile's weights (the two bf16 parts, one product each) times its share
//      of V's columns to its accumulators.
// The weights in bf16 alone would be off by up to 2^-8 of each: about 2e-3 of the output's rms on
// every element, outside the tests' 1e-3 of the rms near zero; the two parts carry 16 bits.
// A split's result is normalised and rounded to bf16 when the query has one split, else merged with
// the others' (sparse_mla_merge.cuh).
#include <algorithm>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/latent_records.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/cuda/sparse_mla_merge.cuh"

namespace dsa::cuda {
namespace {

using dev::Records;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kKeys = 32;      // records per chunk
constexpr int kPad = 8;        // bf16 elements after each shared row: conflict-free fragment loads
constexpr int kMaxLora = 512;  // the accumulators are sized for it
constexpr int kMinSplit = 64;  // keys per split at least

// Shared memory of a block of `heads` heads, in this order: the chunk's scores [heads][kKeys] f32,
// per head the running max, the running sum and this chunk's rescale factor (f32), then as bf16
// bits q [heads][D + kPad] (q_abs then q_pe), the chunk's records [kKeys][D + kPad] (c_kv then
// k_pe), their c_kv transposed [kv_lora][kKeys + kPad], the chunk's weights [heads][kKeys + kPad]
// and their remainders [heads][kKeys + kPad].
// Every bf16 row is a multiple of 16 bytes and the f32 part is too, so rows start 16-byte aligned.
size_t smem_bytes(int heads, int64_t kv_lora, int64_t rope) {
  const size_t D = size_t(kv_lora + rope);
  return (size_t(heads) * kKeys + 3 * size_t(heads)) * sizeof(float) +
         (size_t(heads) * (D + kPad) + size_t(kKeys) * (D + kPad) + size_t(kv_lora) * (kKeys + kPad) +
          2 * size_t(heads) * (kKeys + kPad)) *
             sizeof(uint16_t);
}

__device__ __forceinline__ uint32_t pair(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// blockIdx: x the head group (kTiles * 16 heads), y the split, z the query (its q_abs, q_pe after the
// previous query's, its page table pages_stride entries on, its selection sel_stride on,
// min(n_sel_of[z], max_sel) keys, or max_sel). One split: o_lat gets the result. Several:
// part_o [query][split][head][kv_lora] and part_ml [query][split][head][2] get the split's
// unnormalised output, max and sum.
template <int kTiles>
__global__ void __launch_bounds__(kThreads, 1)
sparse_mla_mma_kernel(const float* q_abs, const float* q_pe, int n_heads, Records rec, int64_t pages_stride,
                      const int32_t* sel, int64_t sel_stride, const int32_t* n_sel_of, int max_sel, int split_len,
                      float softmax_scale, float* o_lat, float* part_o, float* part_ml) {
  constexpr int kHeads = kTiles * 16;
  constexpr int kParts = kWarps / kTiles;           // column shares of the weighted sum per head tile
  constexpr int kMaxTiles = kMaxLora / kParts / 8;  // 8-column tiles per warp at most
  extern __shared__ __align__(16) uint8_t smem[];
  const int kv_lora = rec.kv_lora, rope = rec.rope, D = kv_lora + rope, ld = D + kPad, ldv = kKeys + kPad;
  float* s_score = reinterpret_cast<float*>(smem);
  float* s_max = s_score + kHeads * kKeys;
  float* s_sum = s_max + kHeads;
  float* s_rescale = s_sum + kHeads;
  uint16_t* s_q = reinterpret_cast<uint16_t*>(s_rescale + kHeads);
  uint16_t* s_k = s_q + kHeads * ld;
  uint16_t* s_vt = s_k + kKeys * ld;
  uint16_t* s_p = s_vt + kv_lora * ldv;
  uint16_t* s_pl = s_p + kHeads * ldv;

  const dev::SplitShare b = dev::split_share(kHeads, n_heads, pages_stride, sel_stride, n_sel_of, max_sel, split_len,
                                             q_abs, q_pe, rec, sel);
  const int h0 = b.h0, hn = b.hn, j0 = b.j0, j1 = b.j1;
  const int64_t query = b.query, split = b.split, n_splits = b.n_splits;

  // q in bf16 (its values are bf16 already), zero rows past the heads.
  for (int i = threadIdx.x; i < kHeads * D; i += kThreads) {
    const int h = i / D, d = i % D;
    const float v = h >= hn       ? 0.0f
                    : d < kv_lora ? q_abs[size_t(h0 + h) * kv_lora + d]
                                  : q_pe[size_t(h0 + h) * rope + (d - kv_lora)];
    s_q[h * ld + d] = dev::float_to_bf16(v);
  }
  for (int h = threadIdx.x; h < kHeads; h += kThreads) {
    s_max[h] = -INFINITY;
    s_sum[h] = 0.0f;
  }
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  // This warp's share of the weighted sum: head tile `tile`, 8-column tiles from column c_lo.
  const int tile = warp % kTiles, c_lo = (warp / kTiles) * (kv_lora / kParts), n_col_tiles = kv_lora / kParts / 8;
  float acc[kMaxTiles][4] = {};

  for (int c0 = j0; c0 < j1; c0 += kKeys) {  // the same trip count for the whole block
    const int n = min(kKeys, j1 - c0);
    // 1. Decode, 8 values per step: consecutive threads take consecutive records (so the transposed
    // stores fall in distinct banks); zeros past the chunk's records.
#pragma unroll 3
    for (int u = threadIdx.x; u < kKeys * (D / 8); u += kThreads) {
      const int r = u % kKeys, d0 = (u / kKeys) * 8;
      uint16_t v[8] = {};
      if (r < n) rec.bf16x8(rec.at(rec.slot(sel[c0 + r])), d0, v);
      uint4 packed;
      packed.x = uint32_t(v[0]) | uint32_t(v[1]) << 16;
      packed.y = uint32_t(v[2]) | uint32_t(v[3]) << 16;
      packed.z = uint32_t(v[4]) | uint32_t(v[5]) << 16;
      packed.w = uint32_t(v[6]) | uint32_t(v[7]) << 16;
      *reinterpret_cast<uint4*>(s_k + r * ld + d0) = packed;
      if (d0 < kv_lora) {
#pragma unroll
        for (int i = 0; i < 8; ++i) s_vt[(d0 + i) * ldv + r] = v[i];
      }
    }
    __syncthreads();

    // The next chunk's records on their way into L2 while this one is multiplied (the block is
    // alone on its SM: nothing else would hide the next decode's loads).
    if (c0 + kKeys < j1) {
      const int lines = int((rec.record_bytes + 127) / 128), next = min(kKeys, j1 - c0 - kKeys);
      for (int u = threadIdx.x; u < next * lines; u += kThreads) {
        const size_t at = min(size_t(u % lines) * 128, rec.record_bytes - 1);
        dev::prefetch_l2(rec.at(rec.slot(sel[c0 + kKeys + u / lines])) + at);
      }
    }

    // 2. Scores, (16 heads x 8 keys) tiles over the warps; -inf past the chunk's records.
    for (int st = warp; st < kTiles * (kKeys / 8); st += kWarps) {
      const int th = st / (kKeys / 8), tk = st % (kKeys / 8);
      float s[4] = {};
      const uint16_t* qa = s_q + (th * 16 + g) * ld + 2 * t;
      const uint16_t* kb = s_k + (tk * 8 + g) * ld + 2 * t;
      for (int kk = 0; kk < D; kk += 16) {
        const uint32_t a[4] = {pair(qa + kk), pair(qa + 8 * ld + kk), pair(qa + kk + 8), pair(qa + 8 * ld + kk + 8)};
        const uint32_t b[2] = {pair(kb + kk), pair(kb + kk + 8)};
        dev::mma_bf16(s, a, b);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = th * 16 + g + (e >= 2 ? 8 : 0), key = tk * 8 + 2 * t + (e & 1);
        s_score[h * kKeys + key] = key < n ? s[e] * softmax_scale : -INFINITY;
      }
    }
    __syncthreads();

    // 3. Online softmax, a warp per head and a lane per key. The chunk holds at least one record,
    // so the new max is finite.
    for (int h = warp; h < kHeads; h += kWarps) {
      const float p = dev::online_softmax_step(s_score[h * kKeys + lane], &s_max[h], &s_sum[h], &s_rescale[h]);
      const uint16_t p_hi = dev::float_to_bf16(p);
      s_p[h * ldv + lane] = p_hi;
      s_pl[h * ldv + lane] = dev::float_to_bf16(p - dev::bf16_to_float(p_hi));  // exact difference
    }
    __syncthreads();

    // 4. This warp's accumulators: rescaled, then + weights [16 heads x 32 keys] . V [32 keys x its
    // columns], the weights' two bf16 parts each.
    const float f_lo = s_rescale[tile * 16 + g], f_hi = s_rescale[tile * 16 + g + 8];
#pragma unroll
    for (int i = 0; i < kMaxTiles; ++i) {
      acc[i][0] *= f_lo;
      acc[i][1] *= f_lo;
      acc[i][2] *= f_hi;
      acc[i][3] *= f_hi;
    }
    const uint16_t* pa = s_p + (tile * 16 + g) * ldv + 2 * t;
    const uint16_t* pl = s_pl + (tile * 16 + g) * ldv + 2 * t;
#pragma unroll
    for (int kk = 0; kk < kKeys; kk += 16) {
      const uint32_t a[4] = {pair(pa + kk), pair(pa + 8 * ldv + kk), pair(pa + kk + 8), pair(pa + 8 * ldv + kk + 8)};
      const uint32_t al[4] = {pair(pl + kk), pair(pl + 8 * ldv + kk), pair(pl + kk + 8), pair(pl + 8 * ldv + kk + 8)};
#pragma unroll
      for (int i = 0; i < kMaxTiles; ++i) {
        if (i < n_col_tiles) {
          const uint16_t* vb = s_vt + (c_lo + i * 8 + g) * ldv + kk + 2 * t;
          const uint32_t b[2] = {pair(vb), pair(vb + 8)};
          dev::mma_bf16(acc[i], a, b);
          dev::mma_bf16(acc[i], al, b);
        }
      }
    }
    __syncthreads();  // the next chunk overwrites the records, the scores and the weights
  }

  // The accumulators' rows are heads tile * 16 + g (elements 0, 1) and + 8 (2, 3), their columns
  // c_lo + i * 8 + 2t (+ 1): f(head, column, value) for each of this block's heads.
  const int h_lo = tile * 16 + g, h_hi = h_lo + 8;
  const auto for_each_output = [&](auto&& f) {
#pragma unroll
    for (int i = 0; i < kMaxTiles; ++i) {
      if (i >= n_col_tiles) continue;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e < 2 ? h_lo : h_hi;
        if (h < hn) f(h, c_lo + i * 8 + 2 * t + (e & 1), acc[i][e]);
      }
    }
  };
  if (n_splits == 1) {
    // Normalised and rounded; a query without keys (sum 0) gets zeros.
    const float inv_lo = s_sum[h_lo] > 0.0f ? 1.0f / s_sum[h_lo] : 0.0f;
    const float inv_hi = s_sum[h_hi] > 0.0f ? 1.0f / s_sum[h_hi] : 0.0f;
    float* o = o_lat + (size_t(query) * n_heads + h0) * kv_lora;
    for_each_output([&](int h, int col, float v) {
      o[size_t(h) * kv_lora + col] = dev::round_bf16(v * (h == h_lo ? inv_lo : inv_hi));
    });
    return;
  }
  const size_t base = (size_t(query) * size_t(n_splits) + size_t(split)) * size_t(n_heads) + size_t(h0);
  for_each_output([&](int h, int col, float v) { part_o[(base + size_t(h)) * size_t(kv_lora) + size_t(col)] = v; });
  for (int h = threadIdx.x; h < hn; h += kThreads) {
    part_ml[(base + size_t(h)) * 2] = s_max[h];
    part_ml[(base + size_t(h)) * 2 + 1] = s_sum[h];
  }
}

// Head tiles per block: 4 (64 heads) where the heads and the shared memory allow, else 2, else 1.
int choose_tiles(int64_t n_heads, int64_t kv_lora, int64_t rope) {
  const size_t smem_max = size_t(dev::device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
  for (int tiles : {4, 2})
    if (n_heads > 16 * (tiles / 2) && smem_bytes(16 * tiles, kv_lora, rope) <= smem_max) return tiles;
  return 1;
}

template <int kTiles>
void launch(dim3 grid, size_t smem, cudaStream_t stream, const float* q_abs, const float* q_pe, int n_heads,
            const Records& rec, int64_t pages_stride, const int32_t* sel, int64_t sel_stride, const int32_t* n_sel,
            int max_sel, int split_len, float softmax_scale, float* o_lat, float* part_o, float* part_ml) {
  dev::allow_dynamic_smem(sparse_mla_mma_kernel<kTiles>, smem);
  sparse_mla_mma_kernel<kTiles><<<grid, kThreads, smem, stream>>>(q_abs, q_pe, n_heads, rec, pages_stride, sel,
                                                                  sel_stride, n_sel, max_sel, split_len, softmax_scale,
                                                                  o_lat, part_o, part_ml);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool sparse_mla_decode_mma_supported(int64_t kv_lora, int64_t rope_dim) {
  return dev::mma_available() && kv_lora > 0 && kv_lora % 64 == 0 && kv_lora <= kMaxLora && rope_dim >= 0 &&
         (kv_lora + rope_dim) % 16 == 0 &&
         smem_bytes(16, kv_lora, rope_dim) <= size_t(dev::device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
}

void sparse_mla_decode_mma_batched(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                                   int64_t pages_stride, int64_t n_q, const int32_t* sel, int64_t sel_stride,
                                   const int32_t* n_sel, int64_t max_sel, float softmax_scale, float* o_lat,
                                   cudaStream_t stream) {
  if (dev::sparse_mla_nothing_to_launch(view, n_heads, n_q, max_sel, o_lat, stream)) return;
  DSA_CUDA_REQUIRE(sparse_mla_decode_mma_supported(view.kv_lora, view.rope_dim),
                   "sparse_mla_decode_mma: sm_80+, kv_lora % 64 == 0 and <= 512, (kv_lora + rope) % 16 == 0");
  DSA_CUDA_REQUIRE(max_sel <= INT32_MAX && n_heads <= INT32_MAX, "sparse_mla_decode_mma: bounds");
  const int tiles = choose_tiles(n_heads, view.kv_lora, view.rope_dim);
  const int64_t groups = (n_heads + 16 * tiles - 1) / (16 * tiles);
  const size_t smem = smem_bytes(16 * tiles, view.kv_lora, view.rope_dim);
  const Records rec{view.arena,        view.pages,         view.record_bytes,
                    int(view.kv_lora), int(view.rope_dim), view.fmt == LatentFormat::fp8};
  const int64_t sms = dev::device_attribute(cudaDevAttrMultiProcessorCount);
  for (int64_t q0 = 0; q0 < n_q; q0 += 65535) {  // grid.z and the merge's grid.y
    const int64_t nq = std::min<int64_t>(65535, n_q - q0);
    // Splits of the selection so that the blocks (one per SM: their shared memory) about fill the
    // GPU, each at least kMinSplit keys, in whole chunks.
    const dev::Splits sp = dev::choose_splits(groups * nq, sms, max_sel, kKeys, kMinSplit / kKeys);
    const int64_t split_len = sp.split_len, n_splits = sp.n_splits;
    DSA_CUDA_REQUIRE(n_splits <= 65535, "sparse_mla_decode_mma: too many splits");
    float* part = nullptr;
    float* part_ml = nullptr;
    if (n_splits > 1) {  // the partial outputs, from the stream's memory pool
      const size_t rows = size_t(nq) * size_t(n_splits) * size_t(n_heads);
      part = dev::pool_scratch<float>(rows * size_t(view.kv_lora + 2) * sizeof(float), stream);
      part_ml = part + rows * size_t(view.kv_lora);
    }
    Records r = rec;
    r.pages = rec.pages + q0 * pages_stride;
    const dim3 grid(static_cast<unsigned>(groups), static_cast<unsigned>(n_splits), static_cast<unsigned>(nq));
    const float* qa = q_abs + q0 * n_heads * view.kv_lora;
    const float* qp = q_pe + q0 * n_heads * view.rope_dim;
    const int32_t* s = sel + q0 * sel_stride;
    const int32_t* ns = n_sel ? n_sel + q0 : nullptr;
    float* o = o_lat + q0 * n_heads * view.kv_lora;
    switch (tiles) {
      case 4:
        launch<4>(grid, smem, stream, qa, qp, int(n_heads), r, pages_stride, s, sel_stride, ns, int(max_sel),
                  int(split_len), softmax_scale, o, part, part_ml);
        break;
      case 2:
        launch<2>(grid, smem, stream, qa, qp, int(n_heads), r, pages_stride, s, sel_stride, ns, int(max_sel),
                  int(split_len), softmax_scale, o, part, part_ml);
        break;
      default:
        launch<1>(grid, smem, stream, qa, qp, int(n_heads), r, pages_stride, s, sel_stride, ns, int(max_sel),
                  int(split_len), softmax_scale, o, part, part_ml);
    }
    if (n_splits > 1) {
      detail::sparse_mla_merge(part, part_ml, n_heads, view.kv_lora, n_splits, nq, o, stream);
      DSA_CUDA_CHECK(cudaFreeAsync(part, stream));
    }
  }
}

void sparse_mla_decode_mma(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                           const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat, cudaStream_t stream) {
  sparse_mla_decode_mma_batched(q_abs, q_pe, n_heads, view, 0, 1, sel, 0, nullptr, n_sel, softmax_scale, o_lat, stream);
}

}  // namespace dsa::cuda
