// CUDA sparse MLA decode, split-KV (flash-decoding) form (see attention.hpp).
//
// A block takes kHeads heads of one query and one split of its selection, and walks the split
// kChunk records at a time: the chunk's records decoded to f32 in shared memory (a warp per
// record), scores for every head (a warp per record), an online softmax (a warp per head, a lane
// per record: running max and sum, the accumulator rescaled), the weighted latents (a thread per
// column). It leaves the split's unnormalised output with its max and sum; a second kernel merges
// the splits of each (query, head). The number of splits is chosen so that about two blocks run
// per SM: 128 heads x 2048 keys of one query fill the GPU instead of 32 blocks walking all keys.
#include <algorithm>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/latent_records.cuh"
#include "kernels/cuda/sparse_mla_merge.cuh"

namespace dsa::cuda {
namespace {

using dev::Records;

constexpr int kHeads = 8;   // heads per block, sharing each decoded record
constexpr int kChunk = 32;  // records decoded into shared memory at a time: a lane each in the softmax
static_assert(kChunk == 32, "the online softmax gives each record of a chunk a lane");
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxCols = 2;  // latent columns per thread: kv_lora <= kMaxCols * kThreads
static_assert(kHeads <= kWarps, "the online softmax gives each head a warp");

// Shared memory: q [kHeads][D] (D = kv_lora + rope: q_abs then q_pe), the chunk's records decoded
// [kChunk][D] (c_kv then k_pe), the chunk's scores then weights [kHeads][kChunk], and per head the
// running max, the running sum and this chunk's rescale factor.
size_t split_smem(int64_t kv_lora, int64_t rope) {
  return (size_t(kHeads + kChunk) * size_t(kv_lora + rope) + size_t(kHeads) * (kChunk + 3)) * sizeof(float);
}

// blockIdx: x the head group, y the split, z the query (its q_abs, q_pe after the previous query's,
// its page table pages_stride entries on, its selection sel_stride on, min(n_sel_of[z], max_sel)
// keys, or max_sel). part_o [query][split][head][kv_lora], part_ml [query][split][head][2]: the
// split's unnormalised output, its max and its sum (-inf and 0 for a split past the selection).
__global__ void __launch_bounds__(kThreads)
sparse_mla_split_kernel(const float* q_abs, const float* q_pe, int n_heads, Records rec, int64_t pages_stride,
                        const int32_t* sel, int64_t sel_stride, const int32_t* n_sel_of, int max_sel, int split_len,
                        float softmax_scale, float* part_o, float* part_ml) {
  extern __shared__ __align__(16) float smem_f[];
  const int kv_lora = rec.kv_lora, rope = rec.rope, D = kv_lora + rope;
  const dev::SplitShare b = dev::split_share(kHeads, n_heads, pages_stride, sel_stride, n_sel_of, max_sel, split_len,
                                             q_abs, q_pe, rec, sel);
  const int h0 = b.h0, hn = b.hn, j0 = b.j0, j1 = b.j1;
  const int64_t query = b.query, split = b.split, n_splits = b.n_splits;

  float* q = smem_f;
  float* c = q + kHeads * D;
  float* p = c + kChunk * D;
  float* run_max = p + kHeads * kChunk;
  float* run_sum = run_max + kHeads;
  float* rescale = run_sum + kHeads;
  for (int i = threadIdx.x; i < kHeads * D; i += kThreads) {
    const int h = i / D, d = i % D;
    q[i] = h >= hn        ? 0.0f
           : d < kv_lora ? q_abs[size_t(h0 + h) * kv_lora + d]
                         : q_pe[size_t(h0 + h) * rope + (d - kv_lora)];
  }
  if (threadIdx.x < kHeads) {
    run_max[threadIdx.x] = -INFINITY;
    run_sum[threadIdx.x] = 0.0f;
  }
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc[kHeads][kMaxCols] = {};
  for (int c0 = j0; c0 < j1; c0 += kChunk) {  // the same trip count for the whole block
    const int n = min(kChunk, j1 - c0);
    // Decode the chunk's records, a warp per record.
    for (int r = warp; r < n; r += kWarps) {
      const uint8_t* src = rec.at(rec.slot(sel[c0 + r]));
      float* dst = c + r * D;
      for (int d = lane; d < kv_lora; d += 32) dst[d] = rec.c_kv(src, d);
      for (int i = lane; i < rope; i += 32) dst[kv_lora + i] = rec.k_pe(src, i);
    }
    __syncthreads();
    // Scores, a warp per record, every head at once; -inf for the lanes past the chunk's records.
    for (int r = warp; r < kChunk; r += kWarps) {
      float sc[kHeads] = {};
      if (r < n) {
        for (int d = lane; d < D; d += 32) {
          const float v = c[r * D + d];
#pragma unroll
          for (int h = 0; h < kHeads; ++h) sc[h] = fmaf(q[h * D + d], v, sc[h]);
        }
      }
#pragma unroll
      for (int h = 0; h < kHeads; ++h) {
        const float t = dev::warp_sum(sc[h]);
        if (lane == 0) p[h * kChunk + r] = r < n ? __fmul_rn(t, softmax_scale) : -INFINITY;
      }
    }
    __syncthreads();
    // Online softmax, a warp per head and a lane per record. The chunk holds at least one record,
    // so the new max is finite.
    if (warp < kHeads) {
      const int h = warp;
      p[h * kChunk + lane] = dev::online_softmax_step(p[h * kChunk + lane], &run_max[h], &run_sum[h], &rescale[h]);
    }
    __syncthreads();
    // Weighted latents, a thread per column.
#pragma unroll
    for (int i = 0; i < kMaxCols; ++i) {
      const int col = threadIdx.x + i * kThreads;
      if (col < kv_lora) {
#pragma unroll
        for (int h = 0; h < kHeads; ++h) acc[h][i] *= rescale[h];
        for (int r = 0; r < n; ++r) {
          const float v = c[r * D + col];
#pragma unroll
          for (int h = 0; h < kHeads; ++h) acc[h][i] = fmaf(p[h * kChunk + r], v, acc[h][i]);
        }
      }
    }
    __syncthreads();  // the next chunk overwrites c and p
  }

  const size_t base = (size_t(query) * size_t(n_splits) + size_t(split)) * size_t(n_heads) + size_t(h0);
#pragma unroll
  for (int i = 0; i < kMaxCols; ++i) {
    const int col = threadIdx.x + i * kThreads;
    if (col >= kv_lora) continue;
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
      if (h < hn) part_o[(base + size_t(h)) * size_t(kv_lora) + size_t(col)] = acc[h][i];
    }
  }
  if (threadIdx.x < hn) {
    part_ml[(base + threadIdx.x) * 2] = run_max[threadIdx.x];
    part_ml[(base + threadIdx.x) * 2 + 1] = run_sum[threadIdx.x];
  }
}

// blockIdx: x the head, y the query. o = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s over the
// splits s, M the largest m_s, then rounded to bf16; zeros when the query selects no key.
__global__ void __launch_bounds__(kThreads)
sparse_mla_merge_kernel(const float* part_o, const float* part_ml, int n_heads, int kv_lora, int n_splits,
                        float* o_lat) {
  const int64_t h = blockIdx.x, query = blockIdx.y;
  const auto at = [&](int s) { return (size_t(query) * size_t(n_splits) + size_t(s)) * size_t(n_heads) + size_t(h); };
  float* o = o_lat + (size_t(query) * size_t(n_heads) + size_t(h)) * size_t(kv_lora);
  float m = -INFINITY;
  for (int s = 0; s < n_splits; ++s) m = fmaxf(m, part_ml[at(s) * 2]);
  if (m == -INFINITY) {  // no key selected
    for (int col = threadIdx.x; col < kv_lora; col += kThreads) o[col] = 0.0f;
    return;
  }
  float l = 0.0f;
  for (int s = 0; s < n_splits; ++s) l = fmaf(expf(part_ml[at(s) * 2] - m), part_ml[at(s) * 2 + 1], l);
  const float inv = 1.0f / l;
  for (int col = threadIdx.x; col < kv_lora; col += kThreads) {
    float acc = 0.0f;
    for (int s = 0; s < n_splits; ++s) {
      acc = fmaf(expf(part_ml[at(s) * 2] - m), part_o[at(s) * size_t(kv_lora) + size_t(col)], acc);
    }
    o[col] = dev::round_bf16(acc * inv);
  }
}

}  // namespace

namespace detail {

void sparse_mla_merge(const float* part_o, const float* part_ml, int64_t n_heads, int64_t kv_lora, int64_t n_splits,
                      int64_t n_q, float* o_lat, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(n_q <= 65535 && n_heads <= INT32_MAX, "sparse_mla_merge: grid bounds");
  if (n_q <= 0 || n_heads <= 0) return;
  sparse_mla_merge_kernel<<<dim3(unsigned(n_heads), unsigned(n_q)), kThreads, 0, stream>>>(
      part_o, part_ml, int(n_heads), int(kv_lora), int(n_splits), o_lat);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace detail

bool sparse_mla_decode_split_supported(int64_t kv_lora, int64_t rope_dim) {
  return kv_lora <= kMaxCols * kThreads &&
         split_smem(kv_lora, rope_dim) <= size_t(dev::device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
}

void sparse_mla_decode_split_batched(const float* q_abs, const float* q_pe, int64_t n_heads,
                                     const LatentCacheView& view, int64_t pages_stride, int64_t n_q, const int32_t* sel,
                                     int64_t sel_stride, const int32_t* n_sel, int64_t max_sel, float softmax_scale,
                                     float* o_lat, cudaStream_t stream) {
  if (dev::sparse_mla_nothing_to_launch(view, n_heads, n_q, max_sel, o_lat, stream)) return;
  const bool fp8 = view.fmt == LatentFormat::fp8;
  DSA_CUDA_REQUIRE(sparse_mla_decode_split_supported(view.kv_lora, view.rope_dim),
                   "sparse_mla_decode_split: kv_lora <= 512 and the chunk's records in shared memory");
  DSA_CUDA_REQUIRE(max_sel <= INT32_MAX, "sparse_mla_decode_split: max_sel fits an int");
  const size_t smem = split_smem(view.kv_lora, view.rope_dim);
  dev::allow_dynamic_smem(sparse_mla_split_kernel, smem);
  const int64_t groups = (n_heads + kHeads - 1) / kHeads;
  const int64_t kv_lora = view.kv_lora;
  // Up to 65535 queries per launch (grid.z and the merge's grid.y).
  for (int64_t q0 = 0; q0 < n_q; q0 += 65535) {
    const int64_t nq = std::min<int64_t>(65535, n_q - q0);
    // About two blocks per SM over all head groups and queries, each split at least one chunk long.
    const dev::Splits sp = dev::choose_splits(groups * nq, 2 * dev::device_attribute(cudaDevAttrMultiProcessorCount),
                                              max_sel, kChunk, 1);
    DSA_CUDA_REQUIRE(sp.n_splits <= 65535, "sparse_mla_decode_split: too many splits");
    // The partial outputs, from the stream's memory pool (captured into a CUDA graph as its own
    // allocation).
    const size_t part_rows = size_t(nq) * size_t(sp.n_splits) * size_t(n_heads);
    float* part = dev::pool_scratch<float>(part_rows * size_t(kv_lora + 2) * sizeof(float), stream);
    float* part_ml = part + part_rows * size_t(kv_lora);
    const Records rec{view.arena, view.pages + q0 * pages_stride, view.record_bytes, int(kv_lora), int(view.rope_dim),
                      fp8};
    const dim3 grid(unsigned(groups), unsigned(sp.n_splits), unsigned(nq));
    sparse_mla_split_kernel<<<grid, kThreads, smem, stream>>>(
        q_abs + q0 * n_heads * kv_lora, q_pe + q0 * n_heads * view.rope_dim, int(n_heads), rec, pages_stride,
        sel + q0 * sel_stride, sel_stride, n_sel ? n_sel + q0 : nullptr, int(max_sel), int(sp.split_len), softmax_scale,
        part, part_ml);
    DSA_CUDA_CHECK_LAUNCH();
    detail::sparse_mla_merge(part, part_ml, n_heads, kv_lora, sp.n_splits, nq, o_lat + q0 * n_heads * kv_lora, stream);
    DSA_CUDA_CHECK(cudaFreeAsync(part, stream));
  }
}

void sparse_mla_decode_split(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                             const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat,
                             cudaStream_t stream) {
  sparse_mla_decode_split_batched(q_abs, q_pe, n_heads, view, 0, 1, sel, 0, nullptr, n_sel, softmax_scale, o_lat,
                                  stream);
}

}  // namespace dsa::cuda
