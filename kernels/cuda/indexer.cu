// CUDA indexer scores (see indexer.hpp).
#include <algorithm>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/indexer.hpp"

namespace dsa::cuda {
namespace {

constexpr int kPage = int(kIndexerPageTokens);
constexpr int kThreads = 256;
constexpr int kKeyTiles = kPage / 4;                // 4 keys per thread
constexpr int kHeadTileRows = kThreads / kKeyTiles;  // threads sharing a key tile
constexpr int kMaxHeads = 128;
constexpr int kHeadTilesPerThread = kMaxHeads / 4 / kHeadTileRows;

// A block per 64-token page. Shared memory: q as f32 [dim][hp] (heads padded to a multiple of 4
// with zeros), the page's keys as f32 [dim][64] (e4m3 values are exact), the weighted logits
// [n_heads][64]. Each thread computes 4 heads x 4 keys at a time (register tiles, float4 loads), so
// the dot products run from registers rather than one shared-memory load per multiply-add; each
// product is summed over the dimensions in order, as before. blockIdx.x: the page; blockIdx.y: the
// query, its page table pages_stride entries after the previous one's, its key count n_keys_of[y]
// (or n_keys).
__global__ void __launch_bounds__(kThreads)
indexer_scores_kernel(const uint8_t* q_codes, const float* w, int n_heads, const uint8_t* arena,
                      const int32_t* pages, int64_t pages_stride, int dim, size_t page_bytes, const int32_t* n_keys_of,
                      int64_t n_keys, float* scores, int64_t ld_scores) {
  extern __shared__ __align__(16) uint8_t smem[];
  const int hp = (n_heads + 3) / 4 * 4;
  float* qt = reinterpret_cast<float*>(smem);
  float* kt = qt + dim * hp;
  float* logits = kt + dim * kPage;
  const int64_t p = blockIdx.x, query = blockIdx.y;
  if (n_keys_of) n_keys = min(int64_t(n_keys_of[query]), n_keys);  // within the grid sized for max_keys
  if (p * kPage >= n_keys) return;  // the whole block: this query has fewer pages
  q_codes += query * n_heads * dim;
  w += query * n_heads;
  pages += query * pages_stride;
  scores += query * ld_scores;
  const uint8_t* page = arena + size_t(pages[p]) * page_bytes;
  const int keys = int(min(int64_t(kPage), n_keys - p * kPage));
  for (int i = threadIdx.x; i < dim * hp; i += kThreads) {
    const int d = i / hp, h = i % hp;
    qt[i] = h < n_heads ? dev::fp8_to_float(q_codes[h * dim + d]) : 0.0f;
  }
  // 16 codes per load: row s, dims [d0, d0 + 16).
  for (int e = threadIdx.x; e < kPage * dim / 16; e += kThreads) {
    const int s = e / (dim / 16), d0 = (e % (dim / 16)) * 16;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (s < keys) v = *reinterpret_cast<const uint4*>(page + size_t(s) * dim + d0);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 16; ++i) kt[(d0 + i) * kPage + s] = dev::fp8_to_float(uint8_t(words[i / 4] >> (8 * (i % 4))));
  }
  __syncthreads();
  const int key_tile = threadIdx.x % kKeyTiles, row = threadIdx.x / kKeyTiles, head_tiles = hp / 4;
  float acc[kHeadTilesPerThread][4][4] = {};
  for (int d = 0; d < dim; ++d) {
    const float4 kv = *reinterpret_cast<const float4*>(kt + d * kPage + key_tile * 4);
    const float kk[4] = {kv.x, kv.y, kv.z, kv.w};
#pragma unroll
    for (int j = 0; j < kHeadTilesPerThread; ++j) {
      const int ht = row + j * kHeadTileRows;
      if (ht < head_tiles) {
        const float4 qv = *reinterpret_cast<const float4*>(qt + d * hp + ht * 4);
        const float qq[4] = {qv.x, qv.y, qv.z, qv.w};
#pragma unroll
        for (int a = 0; a < 4; ++a) {
#pragma unroll
          for (int b = 0; b < 4; ++b) acc[j][a][b] = fmaf(qq[a], kk[b], acc[j][a][b]);
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kHeadTilesPerThread; ++j) {
    const int ht = row + j * kHeadTileRows;
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const int h = ht * 4 + a;
      if (ht < head_tiles && h < n_heads) {
#pragma unroll
        for (int b = 0; b < 4; ++b) logits[h * kPage + key_tile * 4 + b] = __fmul_rn(fmaxf(acc[j][a][b], 0.0f), w[h]);
      }
    }
  }
  __syncthreads();
  if (threadIdx.x < kPage && int(threadIdx.x) < keys) {
    const int s = threadIdx.x;
    float sum = 0.0f;
    for (int h = 0; h < n_heads; ++h) sum = __fadd_rn(sum, logits[h * kPage + s]);
    float kscale;
    memcpy(&kscale, page + size_t(kPage) * dim + size_t(s) * sizeof(float), sizeof(float));
    scores[p * kPage + s] = __fmul_rn(kscale, sum);
  }
}

// One warp per key.
__global__ void indexer_write_kernel(uint8_t* arena, const int32_t* pages, int dim, size_t page_bytes,
                                     int64_t n_tok, const int64_t* pos, const float* k) {
  const int lane = threadIdx.x & 31;
  const int64_t t = int64_t(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
  if (t >= n_tok) return;
  const float* kt = k + t * dim;
  float amax = 0.0f;
  for (int i = lane; i < dim; i += 32) amax = fmaxf(amax, fabsf(kt[i]));
  const float scale = dev::ue8m0_scale(dev::warp_max(amax));
  const int64_t p = pos[t];
  uint8_t* page = arena + size_t(pages[p / kPage]) * page_bytes;
  const int row = int(p % kPage);
  for (int i = lane; i < dim; i += 32) page[size_t(row) * dim + i] = dev::quantise(kt[i], scale);
  if (lane == 0) reinterpret_cast<float*>(page + size_t(kPage) * dim)[row] = scale;
}

__global__ void indexer_fold_weights_kernel(float* w, const float* q_scale, int64_t n, float head_scale,
                                            float rot_scale) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < n) w[r] = __fmul_rn(__fmul_rn(__fmul_rn(w[r], head_scale), q_scale[r]), rot_scale);
}

}  // namespace

void indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t n_tok, const int64_t* pos,
                   const float* k, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(head_dim > 0 && head_dim <= 128, "indexer_write: the cache holds one scale per key, head_dim <= 128");
  DSA_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(arena) % 4 == 0, "indexer_write: the arena must be 4-byte aligned");
  if (n_tok <= 0) return;
  constexpr int warps = kThreads / 32;
  indexer_write_kernel<<<unsigned((n_tok + warps - 1) / warps), kThreads, 0, stream>>>(
      arena, pages, int(head_dim), cpu::indexer_page_bytes(head_dim), n_tok, pos, k);
  DSA_CUDA_CHECK_LAUNCH();
}

void indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads, const IndexerCacheView& view,
                    int64_t n_keys, float* scores, cudaStream_t stream) {
  indexer_scores_batched(q_codes, w, n_heads, view, 0, 1, nullptr, n_keys, scores, n_keys, stream);
}

void indexer_scores_batched(const uint8_t* q_codes, const float* w, int64_t n_heads, const IndexerCacheView& view,
                            int64_t pages_stride, int64_t n_q, const int32_t* n_keys, int64_t max_keys, float* scores,
                            int64_t ld_scores, cudaStream_t stream) {
  const int64_t dim = view.head_dim;
  DSA_CUDA_REQUIRE(dim > 0 && dim <= 128 && dim % 16 == 0, "indexer_scores needs head_dim = 16 * (1..8)");
  DSA_CUDA_REQUIRE(n_heads > 0 && n_heads <= kMaxHeads, "indexer_scores needs 1..128 heads");
  DSA_CUDA_REQUIRE(view.page_bytes == cpu::indexer_page_bytes(dim), "indexer_scores: page_bytes mismatch");
  DSA_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(view.arena) % 16 == 0, "indexer_scores: the arena must be 16-byte aligned");
  if (max_keys <= 0 || n_q <= 0) return;
  const size_t smem = size_t(((n_heads + 3) / 4 * 4 + kPage) * dim + n_heads * kPage) * sizeof(float);
  DSA_CUDA_CHECK(cudaFuncSetAttribute(indexer_scores_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int64_t n_pages = (max_keys + kPage - 1) / kPage;
  // Up to 65535 queries per launch (grid.y).
  for (int64_t q0 = 0; q0 < n_q; q0 += 65535) {
    const int64_t n = std::min<int64_t>(65535, n_q - q0);
    indexer_scores_kernel<<<dim3(unsigned(n_pages), unsigned(n)), kThreads, smem, stream>>>(
        q_codes + q0 * n_heads * dim, w + q0 * n_heads, int(n_heads), view.arena, view.pages + q0 * pages_stride,
        pages_stride, int(dim), view.page_bytes, n_keys ? n_keys + q0 : nullptr, max_keys, scores + q0 * ld_scores,
        ld_scores);
    DSA_CUDA_CHECK_LAUNCH();
  }
}

void indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale, float rot_scale,
                          cudaStream_t stream) {
  if (n <= 0) return;
  indexer_fold_weights_kernel<<<unsigned((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(w, q_scale, n,
                                                                                               head_scale, rot_scale);
  DSA_CUDA_CHECK_LAUNCH();
}

}  // namespace dsa::cuda
