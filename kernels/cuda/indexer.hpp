// CUDA lightning indexer: key writes, the fold of the head weights, and the scores of one query
// (decode) over the paged FP8 indexer cache; the contracts and cache layout of
// kernels/cpu/indexer.hpp (the view's pointers are device pointers).
// One block per 64-token page. On sm_80 and later the page's head x key logits are tensor-core
// tiles (mma.sync on bf16 operands: the fp8 codes are exact in bf16); before sm_80 each thread
// computes 4 heads x 4 keys from shared memory. Either way the weighted ReLU logits are then summed
// over the heads in order. Dots accumulate in fp32 (as the reference's fp8 MMA), so scores match
// the CPU's exact-dot scalar reference to fp32 rounding.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/indexer.hpp"

namespace dsa::cuda {

using cpu::IndexerCacheView;
using cpu::kIndexerPageTokens;

// Stores n_tok keys k: [n_tok, head_dim] f32 (bf16 values after LayerNorm, RoPE and Hadamard) at
// the cache slots pos: [n_tok] int64 (device), each quantised with one ue8m0 scale: byte for byte
// what cpu::indexer_write stores token by token. head_dim <= 128.
void indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t n_tok, const int64_t* pos,
                   const float* k, cudaStream_t stream);

// q_codes: [n_heads, head_dim] e4m3 (device); w: [n_heads] f32 (device), with every factor folded in
// as in the CPU contract; view: device arena (16-byte aligned) and page table, head_dim <= 128 and a
// multiple of 16, n_heads <= 128. scores: [n_keys] f32 (device):
//   scores[s] = kscale[s] * sum_h w[h] * relu(dot(q[h], k[s]))   for s < n_keys.
void indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads, const IndexerCacheView& view,
                    int64_t n_keys, float* scores, cudaStream_t stream);

// n_q queries at once (a prefill chunk, or a decode batch): query i's q_codes [n_heads, head_dim] and
// w [n_heads] follow query i-1's, its page table is view.pages + i * pages_stride (0: one sequence),
// its key count n_keys[i] (device int32, each <= max_keys), its scores at scores + i * ld_scores.
void indexer_scores_batched(const uint8_t* q_codes, const float* w, int64_t n_heads, const IndexerCacheView& view,
                            int64_t pages_stride, int64_t n_q, const int32_t* n_keys, int64_t max_keys, float* scores,
                            int64_t ld_scores, cudaStream_t stream);

// The shared memory a block of indexer_scores takes on the current device for n_heads x head_dim,
// and the most a block may have there. Within it for every V3.2 shape on sm_80+, but not always
// before (64 heads x 128 dims take 80 KiB there; an sm_75 block gets 64 KiB): checked at load.
struct SharedMemoryNeed {
  size_t bytes = 0, limit = 0;
};
SharedMemoryNeed indexer_scores_smem(int64_t n_heads, int64_t head_dim);

// w[r] = w[r] * head_scale * q_scale[r] * rot_scale for r < n (fp32 products left to right, as
// cpu::indexer_fold_weights: bit-exact). w, q_scale: [n] f32 (device).
void indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale, float rot_scale,
                          cudaStream_t stream);

}  // namespace dsa::cuda
