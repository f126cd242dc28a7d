// CUDA indexer scores (see indexer.hpp).
#include <algorithm>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/indexer.hpp"
#include "kernels/cuda/mma.cuh"

namespace dsa::cuda {
namespace {

constexpr int kPage = int(kIndexerPageTokens);
constexpr int kThreads = 256;
constexpr int kKeyTiles = kPage / 4;                // 4 keys per thread
constexpr int kHeadTileRows = kThreads / kKeyTiles;  // threads sharing a key tile
constexpr int kMaxHeads = 128;
constexpr int kHeadTilesPerThread = kMaxHeads / 4 / kHeadTileRows;
constexpr int kQueriesPerPage = 8;  // queries of one page table per block
constexpr int kPagesPerBlock = 4;   // pages per block for a query alone

// The page a block scores for one query (blockIdx.x: the page; query: its q and weights after the
// previous query's, its page table pages_stride entries after the previous one's, its key count
// n_keys_of[query] or n_keys). Fields: the query's operands, the page's bytes, the keys that count.
struct ScoredPage {
  const uint8_t* q_codes;
  const float* w;
  const uint8_t* page;
  float* scores;  // the page's first score
  int keys;
};

struct ScoresArgs {
  const uint8_t* q_codes;
  const float* w;
  int n_heads;
  const uint8_t* arena;
  const int32_t* pages;
  int64_t pages_stride;
  int dim;
  size_t page_bytes;
  const int32_t* n_keys_of;  // or null: n_keys for every query
  int64_t n_keys;            // the grid's bound (max_keys)
  float* scores;
  int64_t ld_scores;
  int64_t n_q;
  int group;            // queries per block (one page table for them all when more than 1)
  int pages_per_block;  // consecutive pages per block
};

// false when the query has fewer pages than p + 1.
__device__ __forceinline__ bool scored_page(const ScoresArgs& a, int64_t query, int64_t p, ScoredPage& out) {
  const int64_t n_keys = a.n_keys_of ? min(int64_t(a.n_keys_of[query]), a.n_keys) : a.n_keys;
  if (p * kPage >= n_keys) return false;
  out.q_codes = a.q_codes + query * a.n_heads * a.dim;
  out.w = a.w + query * a.n_heads;
  out.page = a.arena + size_t(a.pages[query * a.pages_stride + p]) * a.page_bytes;
  out.scores = a.scores + query * a.ld_scores + p * kPage;
  out.keys = int(min(int64_t(kPage), n_keys - p * kPage));
  return true;
}

// Each key's weighted ReLU logits [n_heads][64] summed over the heads in order, times the key's
// scale (after a barrier over the logits' writes).
__device__ __forceinline__ void write_page_scores(const float* logits, int n_heads, int dim, const ScoredPage& pg) {
  if (threadIdx.x >= kPage || int(threadIdx.x) >= pg.keys) return;
  const int s = threadIdx.x;
  float sum = 0.0f;
  for (int h = 0; h < n_heads; ++h) sum = __fadd_rn(sum, logits[h * kPage + s]);
  float kscale;
  memcpy(&kscale, pg.page + size_t(kPage) * dim + size_t(s) * sizeof(float), sizeof(float));
  pg.scores[s] = __fmul_rn(kscale, sum);
}

// A block scores `pages_per_block` consecutive pages for `group` consecutive queries: each page's
// keys are loaded into shared memory once (as many as the group's longest query counts), then each
// query's q is loaded (once for all the pages when the group is one query), its logits computed by
// Form and its scores written. Form: the shared-memory layout and the logits.
template <class Form>
__global__ void __launch_bounds__(kThreads) indexer_scores_kernel(ScoresArgs a) {
  extern __shared__ __align__(16) uint8_t smem[];
  const Form form(smem, a.n_heads, a.dim);
  const int64_t first = int64_t(blockIdx.y) * a.group, end = min(first + a.group, a.n_q);
  const int64_t p0 = int64_t(blockIdx.x) * a.pages_per_block;
  bool q_kept = false;  // the single query's q, loaded for the first page
  for (int64_t p = p0; p < p0 + a.pages_per_block; ++p) {
    int page_keys = 0;
    const uint8_t* page = nullptr;
    for (int64_t query = first; query < end; ++query) {
      ScoredPage pg;
      if (scored_page(a, query, p, pg) && pg.keys > page_keys) page_keys = pg.keys, page = pg.page;
    }
    if (page_keys == 0) return;  // no query has keys here, nor on the later pages
    form.load_keys(page, page_keys, a.dim);
    // The block's next page on its way into L2 while this one is scored.
    if (p + 1 < p0 + a.pages_per_block) {
      ScoredPage next;
      if (scored_page(a, first, p + 1, next)) dev::prefetch_l2_bytes(next.page, a.page_bytes);
    }
    for (int64_t query = first; query < end; ++query) {
      ScoredPage pg;
      if (!scored_page(a, query, p, pg)) continue;
      if (!q_kept) form.load_q(pg.q_codes, a.n_heads, a.dim);
      q_kept = a.group == 1;
      __syncthreads();  // keys (first query) and q loaded
      form.logits(pg.w, a.n_heads, a.dim);
      __syncthreads();
      write_page_scores(form.logit_rows, a.n_heads, a.dim, pg);
      __syncthreads();  // q, the keys and the logits are free for the next query or page
    }
  }
}

// Before sm_80: q as f32 [dim][hp] (heads padded to a multiple of 4 with zeros), the page's keys as
// f32 [dim][64] (e4m3 values are exact), the weighted logits [n_heads][64]. Each thread computes 4
// heads x 4 keys at a time (register tiles, float4 loads), so the dot products run from registers
// rather than one shared-memory load per multiply-add; each product is summed over the dimensions
// in order.
struct TiledForm {
  float* qt;
  float* kt;
  float* logit_rows;
  int hp;

  static size_t smem_bytes(int n_heads, int dim) {
    return size_t(((n_heads + 3) / 4 * 4 + kPage) * dim + n_heads * kPage) * sizeof(float);
  }

  __device__ TiledForm(uint8_t* smem, int n_heads, int dim) : hp((n_heads + 3) / 4 * 4) {
    qt = reinterpret_cast<float*>(smem);
    kt = qt + dim * hp;
    logit_rows = kt + dim * kPage;
  }

  __device__ void load_keys(const uint8_t* page, int keys, int dim) const {
    // 16 codes per load: row s, dims [d0, d0 + 16).
    for (int e = threadIdx.x; e < kPage * dim / 16; e += kThreads) {
      const int s = e / (dim / 16), d0 = (e % (dim / 16)) * 16;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (s < keys) v = *reinterpret_cast<const uint4*>(page + size_t(s) * dim + d0);
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int i = 0; i < 16; ++i) kt[(d0 + i) * kPage + s] = dev::fp8_to_float(uint8_t(words[i / 4] >> (8 * (i % 4))));
    }
  }

  __device__ void load_q(const uint8_t* q_codes, int n_heads, int dim) const {
    for (int i = threadIdx.x; i < dim * hp; i += kThreads) {
      const int d = i / hp, h = i % hp;
      qt[i] = h < n_heads ? dev::fp8_to_float(q_codes[h * dim + d]) : 0.0f;
    }
  }

  __device__ void logits(const float* w, int n_heads, int dim) const {
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
          for (int b = 0; b < 4; ++b)
            logit_rows[h * kPage + key_tile * 4 + b] = __fmul_rn(fmaxf(acc[j][a][b], 0.0f), w[h]);
        }
      }
    }
  }
};

// sm_80+: the page's 64 x n_heads logits as mma.sync tiles of 16 heads x 8 keys over the
// dimensions, q and k codes exact in bf16, fp32 accumulation; then each logit's relu times its head
// weight. Shared memory: q [hp16][dim + 8] and the page's keys [64][dim + 8] as bf16 bits (hp16:
// heads padded to 16 with zeros; 8 pad elements make the fragment loads conflict-free), the
// weighted logits [n_heads][64].
constexpr int kMmaPad = 8;

struct MmaForm {
  uint16_t* qs;
  uint16_t* ks;
  float* logit_rows;
  int hp, row;

  static size_t smem_bytes(int n_heads, int dim) {
    return size_t(((n_heads + 15) / 16 * 16 + kPage) * (dim + kMmaPad)) * sizeof(uint16_t) +
           size_t(n_heads * kPage) * sizeof(float);
  }

  __device__ MmaForm(uint8_t* smem, int n_heads, int dim) : hp((n_heads + 15) / 16 * 16), row(dim + kMmaPad) {
    qs = reinterpret_cast<uint16_t*>(smem);
    ks = qs + hp * row;
    logit_rows = reinterpret_cast<float*>(ks + kPage * row);
  }

  __device__ void load_keys(const uint8_t* page, int keys, int dim) const {
    // 4 codes per load (rows are 16-byte aligned): row s, dims [d, d + 4).
    for (int i = threadIdx.x; i < kPage * dim / 4; i += kThreads) {
      const int s = i / (dim / 4), d = (i % (dim / 4)) * 4;
      const uint32_t v = s < keys ? *reinterpret_cast<const uint32_t*>(page + size_t(s) * dim + d) : 0u;
#pragma unroll
      for (int j = 0; j < 4; ++j) ks[s * row + d + j] = dev::float_to_bf16(dev::fp8_to_float(uint8_t(v >> (8 * j))));
    }
  }

  __device__ void load_q(const uint8_t* q_codes, int n_heads, int dim) const {
    for (int i = threadIdx.x; i < hp * dim; i += kThreads) {
      const int h = i / dim, d = i % dim;
      qs[h * row + d] = dev::float_to_bf16(h < n_heads ? dev::fp8_to_float(q_codes[h * dim + d]) : 0.0f);
    }
  }

  __device__ void logits(const float* w, int n_heads, int dim) const {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int tiles = (hp / 16) * (kPage / 8);  // (16 heads, 8 keys) tiles, strided over the warps
    for (int tile = warp; tile < tiles; tile += kThreads / 32) {
      const int h0 = (tile / (kPage / 8)) * 16, s0 = (tile % (kPage / 8)) * 8;
      float acc[4] = {};
      for (int kk = 0; kk < dim; kk += 16) {
        const uint16_t* qa = qs + (h0 + g) * row + kk + 2 * t;
        const uint16_t* kb = ks + (s0 + g) * row + kk + 2 * t;
        const uint32_t a[4] = {
            *reinterpret_cast<const uint32_t*>(qa), *reinterpret_cast<const uint32_t*>(qa + 8 * row),
            *reinterpret_cast<const uint32_t*>(qa + 8), *reinterpret_cast<const uint32_t*>(qa + 8 * row + 8)};
        const uint32_t b[2] = {*reinterpret_cast<const uint32_t*>(kb), *reinterpret_cast<const uint32_t*>(kb + 8)};
        dev::mma_bf16(acc, a, b);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = h0 + g + (e >= 2 ? 8 : 0), s = s0 + 2 * t + (e & 1);
        if (h < n_heads) logit_rows[h * kPage + s] = __fmul_rn(fmaxf(acc[e], 0.0f), w[h]);
      }
    }
  }
};

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

SharedMemoryNeed indexer_scores_smem(int64_t n_heads, int64_t head_dim) {
  const size_t bytes = dev::mma_available() ? MmaForm::smem_bytes(int(n_heads), int(head_dim))
                                            : TiledForm::smem_bytes(int(n_heads), int(head_dim));
  return {bytes, size_t(dev::device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin))};
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
  // The tensor-core form on sm_80+, the register-tiled one before.
  const bool mma = dev::mma_available();
  const auto kernel = mma ? indexer_scores_kernel<MmaForm> : indexer_scores_kernel<TiledForm>;
  const SharedMemoryNeed smem = indexer_scores_smem(n_heads, dim);
  DSA_CUDA_REQUIRE(smem.bytes <= smem.limit, "indexer_scores: n_heads x head_dim past this device's shared memory");
  dev::allow_dynamic_smem(kernel, smem.bytes);
  const int64_t n_pages = (max_keys + kPage - 1) / kPage;
  // Queries of one sequence (one page table: a prefill chunk) share each page's key load, 8 to a
  // block; a query with its own page table (a decode row) keeps its q over 4 pages per block.
  const int group = pages_stride == 0 && n_q > 1 ? kQueriesPerPage : 1;
  const int pages_per_block = group == 1 ? kPagesPerBlock : 1;
  // Up to 65535 query groups per launch (grid.y).
  for (int64_t q0 = 0; q0 < n_q; q0 += 65535 * int64_t(group)) {
    const int64_t n = std::min<int64_t>(65535 * int64_t(group), n_q - q0);
    const ScoresArgs args{q_codes + q0 * n_heads * dim,
                          w + q0 * n_heads,
                          int(n_heads),
                          view.arena,
                          view.pages + q0 * pages_stride,
                          pages_stride,
                          int(dim),
                          view.page_bytes,
                          n_keys ? n_keys + q0 : nullptr,
                          max_keys,
                          scores + q0 * ld_scores,
                          ld_scores,
                          n,
                          group,
                          pages_per_block};
    const dim3 grid(static_cast<unsigned>((n_pages + pages_per_block - 1) / pages_per_block),
                    static_cast<unsigned>((n + group - 1) / group));
    kernel<<<grid, kThreads, smem.bytes, stream>>>(args);
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
