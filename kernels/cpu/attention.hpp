// MLA attention over the paged latent cache (model-spec 4.3, 8): the cache record format, the
// absorbed (MQA) sparse decode over the indexer's selection, and the MHA form used by prefill.
// Scores and softmax are fp32 (model-spec 4.3 ENGINE NOTE); outputs are bf16-rounded.
//
// Latent cache: per layer, 64-token pages of fixed-size records; token t's record is at
//   arena + pages[t / 64] * 64 * record_bytes + (t % 64) * record_bytes.
// Record formats:
//   bf16: c_kv [kv_lora] bf16, then k_pe [rope] bf16                 (2*kv_lora + 2*rope bytes)
//   fp8:  c_kv [kv_lora] e4m3 codes, kv_lora/128 fp32 ue8m0 scales, then k_pe [rope] bf16
//         (kv_lora + 4*kv_lora/128 + 2*rope bytes: 656 for 512 + 64, FlashMLA's V3.2 record)
// Both hold exactly the values the reference caches: fp8_roundtrip(c_kv) and bf16 k_pe.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dsa::cpu {

inline constexpr int64_t kLatentPageTokens = 64;

enum class LatentFormat { bf16, fp8 };

// Bytes of one token's record; kv_lora % 128 == 0 for fp8.
size_t latent_record_bytes(LatentFormat fmt, int64_t kv_lora, int64_t rope_dim);

// A read-only view of one layer's latent cache for one sequence.
struct LatentCacheView {
  const uint8_t* arena;  // page pool of the layer
  const int32_t* pages;  // the sequence's page table
  LatentFormat fmt;
  int64_t kv_lora, rope_dim;
  size_t record_bytes;   // latent_record_bytes(fmt, kv_lora, rope_dim)
};

// Stores token pos's c_kv [kv_lora] (kv_a_layernorm output, bf16 values) and k_pe [rope_dim]
// (after RoPE). bf16: c_kv is fp8-round-tripped first (fp8_roundtrip, block 128) as the reference
// does; fp8: c_kv is quantised with the same act_quant, so both formats read back identical values.
void latent_write(uint8_t* arena, const int32_t* pages, LatentFormat fmt, int64_t kv_lora, int64_t rope_dim,
                  int64_t pos, const float* c_kv, const float* k_pe);

// Decodes token pos's record: c_kv [kv_lora] and k_pe [rope_dim] as f32 (bf16 values).
void latent_read(const LatentCacheView& view, int64_t pos, float* c_kv, float* k_pe);

// Sparse MLA decode, absorbed (MQA) form, one query token:
//   score[h, j] = (q_abs[h] . c_kv[sel[j]] + q_pe[h] . k_pe[sel[j]]) * softmax_scale   (fp32)
//   p[h] = softmax_j(score[h]);  o_lat[h] = bf16(sum_j p[h, j] * c_kv[sel[j]])
// q_abs: [n_heads, kv_lora] f32 (q_nope . W_UK, bf16 values); q_pe: [n_heads, rope_dim] (after RoPE,
// bf16 values). With AVX512_BF16 the scores multiply in bf16 pairs, q rounded to bf16 (exact for
// bf16 values; the latents always are), so only the order of the fp32 additions differs.
// sel: [n_sel] cached positions (any order, each < the sequence length); o_lat: [n_heads, kv_lora].
// Touches only the selected records. n_sel == 0 gives zeros.
void sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                       const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat);

// Sparse MHA for one query token (prefill form, reference Model.attention S > 1):
//   score[h, j] = (q[h, :nope] . k_nope[sel[j], h] + q[h, nope:] . k_pe[sel[j]]) * softmax_scale
//   o[h] = bf16(sum_j softmax_j(score[h])[j] * v[sel[j], h])
// q: [n_heads, nope + rope] (rope part after RoPE). kv: per key position t, the wkv_b output row
// kv + t*ld_kv = [n_heads, nope + v_dim] (k_nope then v per head). k_pe: per position t,
// k_pe + t*ld_pe = [rope] (shared by all heads). sel: [n_sel] positions. o: [n_heads, v_dim].
void sparse_mha(const float* q, int64_t n_heads, int64_t nope, int64_t rope, int64_t v_dim, const float* kv,
                int64_t ld_kv, const float* k_pe, int64_t ld_pe, const int32_t* sel, int64_t n_sel,
                float softmax_scale, float* o);

}  // namespace dsa::cpu
