// The lightning indexer's key cache and scores (model-spec 5.2, 5.4, 8).
// Cache layout, per layer, in 64-token pages: page p holds 64 x head_dim e4m3 codes (token-major)
// followed by 64 fp32 scales, so page_bytes = 64 * head_dim + 64 * 4 (8448 for head_dim 128).
// Token t lives in page pages[t / 64], row t % 64.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dsa::cpu {

inline constexpr int64_t kIndexerPageTokens = 64;

inline size_t indexer_page_bytes(int64_t head_dim) {
  return size_t(kIndexerPageTokens) * size_t(head_dim) + size_t(kIndexerPageTokens) * sizeof(float);
}

// A read-only view of one layer's indexer cache for one sequence.
struct IndexerCacheView {
  const uint8_t* arena;  // page pool of the layer
  const int32_t* pages;  // the sequence's page table
  int64_t head_dim;      // D (<= 128: one scale per token)
  size_t page_bytes;     // indexer_page_bytes(head_dim)
};

// Quantises token pos's key k [head_dim] (bf16 values after LayerNorm, RoPE and Hadamard) with one
// ue8m0 scale (act_quant, block head_dim) and stores codes and scale at its slot.
void indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t pos, const float* k);

// The stored key of token pos: codes [head_dim] and its scale.
void indexer_read(const IndexerCacheView& view, int64_t pos, uint8_t* codes, float* scale);

// Index scores of n_q queries against the cached keys (the fp8_index kernel):
//   scores[i * ld_scores + s] = kscale[s] * sum_h w[i, h] * relu(dot(q[i, h], k[s]))   s < n_keys[i]
// with the dots of e4m3 values accumulated in fp32. q_codes: [n_q, n_heads, head_dim] e4m3 (act_quant
// of the rotated q, block head_dim); w: [n_q, n_heads] f32, already holding every factor the
// reference folds in: weights_proj(x) * n_heads^-0.5 * q_scale[h] * head_dim^-0.5 (so the q scales are
// not passed separately). n_keys: [n_q]; entries s >= n_keys[i] of a row are left untouched.
// Reads every cache page once for all queries; multi-threaded over pages. Scratch: the queries
// decoded to fp32 (n_q * n_heads * head_dim floats, kept per thread between calls).
void indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_q, int64_t n_heads,
                    const IndexerCacheView& view, const int64_t* n_keys, float* scores, int64_t ld_scores);
// One query (decode): scores [n_keys].
inline void indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_heads,
                           const IndexerCacheView& view, int64_t n_keys, float* scores) {
  indexer_scores(q_codes, w, 1, n_heads, view, &n_keys, scores, n_keys);
}

// Folds the constants into the indexer's head weights, in the reference's order:
// w[r] = w[r] * head_scale * q_scale[r] * rot_scale for r < n (w: weights_proj outputs, q_scale: the
// queries' act_quant scales, head_scale = n_heads^-0.5, rot_scale = head_dim^-0.5).
void indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale, float rot_scale);

// Scalar reference of indexer_scores (same contract, single-threaded) for testing the fast path.
void indexer_scores_scalar(const uint8_t* q_codes, const float* w, int64_t n_q, int64_t n_heads,
                           const IndexerCacheView& view, const int64_t* n_keys, float* scores,
                           int64_t ld_scores);

}  // namespace dsa::cpu
