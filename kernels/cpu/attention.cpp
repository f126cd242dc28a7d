// Latent cache records and sparse MLA attention (see attention.hpp).
// sparse_mla_decode splits the heads over threads, one range each; each thread walks the selected
// keys in tiles of kTile records, decoding a tile once per pass: pass 1 computes every score of its
// heads (in bf16 pairs where the CPU has AVX512_BF16, the tile decoded to bf16; else in fp32), then
// an exact (two-pass) fp32 softmax, pass 2 accumulates the weighted latents (fp32 tile).
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/check.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/dtypes.hpp"

namespace dsa::cpu {
namespace {

constexpr int64_t kTile = 64;  // records decoded together (~150 KB of fp32 for 512 + 64)

template <class Byte>  // uint8_t or const uint8_t
inline Byte* record_at(Byte* arena, const int32_t* pages, size_t record_bytes, int64_t pos) {
  return arena + (size_t(pages[pos / kLatentPageTokens]) * kLatentPageTokens + size_t(pos % kLatentPageTokens)) *
                     record_bytes;
}

// The scores' operands: bf16 where the CPU has BF16 dot products (multiplied in pairs, exactly:
// the queries and latents are bf16 values), else fp32 with fused multiply-adds.
#if defined(__AVX512BF16__)
using ScoreElem = uint16_t;  // bf16 bits
constexpr int64_t kScoreStep = simd::kBf16Width;
inline ScoreElem to_score_elem(float v) { return float_to_bf16(v); }
inline float score_value(ScoreElem v) { return bf16_to_float(v); }
inline simd::vf score_madd(const ScoreElem* q, const ScoreElem* k, simd::vf acc) {
  return simd::dot_bf16(simd::load_bf16x32(q), simd::load_bf16x32(k), acc);
}
#else
using ScoreElem = float;
constexpr int64_t kScoreStep = simd::kWidth;
inline ScoreElem to_score_elem(float v) { return v; }
inline float score_value(ScoreElem v) { return v; }
inline simd::vf score_madd(const ScoreElem* q, const ScoreElem* k, simd::vf acc) {
  return simd::fma(simd::load(q), simd::load(k), acc);
}
#endif

// s[r] = q[r] . k for HB query rows of length n (row stride ld_q) against one key row: the key is
// read once for all rows.
template <int HB>
inline void dot_rows(const ScoreElem* q, int64_t ld_q, const ScoreElem* k, int64_t n, float* s) {
  simd::vf acc[HB];
  for (int r = 0; r < HB; ++r) acc[r] = simd::zero();
  int64_t i = 0;
  for (; i + kScoreStep <= n; i += kScoreStep)
    for (int r = 0; r < HB; ++r) acc[r] = score_madd(q + r * ld_q + i, k + i, acc[r]);
  for (int r = 0; r < HB; ++r) {
    s[r] = simd::hsum(acc[r]);
    for (int64_t t = i; t < n; ++t) s[r] += score_value(q[r * ld_q + t]) * score_value(k[t]);
  }
}

// o[r][0..n) += sum_j p[r * ld_p + j] * v[j * ld_v + 0..n) for HB output rows and n_j value rows; the
// outputs stay in registers across the value rows.
template <int HB>
inline void accumulate_rows(const float* p, int64_t ld_p, const float* v, int64_t ld_v, int64_t n_j, int64_t n,
                            float* o, int64_t ld_o) {
  using simd::kWidth;
  int64_t c = 0;
  for (; c + 2 * kWidth <= n; c += 2 * kWidth) {
    simd::vf a0[HB], a1[HB];
    for (int r = 0; r < HB; ++r) {
      a0[r] = simd::load(o + r * ld_o + c);
      a1[r] = simd::load(o + r * ld_o + c + kWidth);
    }
    for (int64_t j = 0; j < n_j; ++j) {
      const simd::vf v0 = simd::load(v + j * ld_v + c), v1 = simd::load(v + j * ld_v + c + kWidth);
      for (int r = 0; r < HB; ++r) {
        const simd::vf pj = simd::set1(p[r * ld_p + j]);
        a0[r] = simd::fma(pj, v0, a0[r]);
        a1[r] = simd::fma(pj, v1, a1[r]);
      }
    }
    for (int r = 0; r < HB; ++r) {
      simd::store(o + r * ld_o + c, a0[r]);
      simd::store(o + r * ld_o + c + kWidth, a1[r]);
    }
  }
  for (; c < n; ++c)
    for (int r = 0; r < HB; ++r)
      for (int64_t j = 0; j < n_j; ++j) o[r * ld_o + c] += p[r * ld_p + j] * v[j * ld_v + c];
}

constexpr int kHeadBlock = 4;  // heads sharing each key / value load

}  // namespace

size_t latent_record_bytes(LatentFormat fmt, int64_t kv_lora, int64_t rope_dim) {
  if (fmt == LatentFormat::bf16) return size_t(2 * kv_lora + 2 * rope_dim);
  return size_t(kv_lora + int64_t(sizeof(float)) * (kv_lora / kQuantBlock) + 2 * rope_dim);
}

void latent_write(uint8_t* arena, const int32_t* pages, LatentFormat fmt, int64_t kv_lora, int64_t rope_dim,
                  int64_t pos, const float* c_kv, const float* k_pe) {
  uint8_t* rec = record_at(arena, pages, latent_record_bytes(fmt, kv_lora, rope_dim), pos);
  uint8_t* pe;
  if (fmt == LatentFormat::bf16) {
    thread_local std::vector<float> rt;
    rt.resize(static_cast<size_t>(kv_lora));
    fp8_roundtrip(c_kv, kv_lora, kQuantBlock, rt.data());
    for (int64_t i = 0; i < kv_lora; ++i) {
      const uint16_t b = float_to_bf16(rt[i]);
      std::memcpy(rec + 2 * i, &b, 2);
    }
    pe = rec + 2 * kv_lora;
  } else {
    const int64_t n_scales = kv_lora / kQuantBlock;
    DSA_KERNEL_REQUIRE(kv_lora % kQuantBlock == 0 && n_scales <= 64, "fp8 latent needs kv_lora = 128 * (1..64)");
    float scales[64];
    act_quant(c_kv, kv_lora, kQuantBlock, rec, scales);
    std::memcpy(rec + kv_lora, scales, size_t(n_scales) * sizeof(float));
    pe = rec + kv_lora + n_scales * int64_t(sizeof(float));
  }
  for (int64_t i = 0; i < rope_dim; ++i) {
    const uint16_t b = float_to_bf16(k_pe[i]);
    std::memcpy(pe + 2 * i, &b, 2);
  }
}

namespace {

// Calls out(i, v) with c_kv[i, i + kWidth) of an FP8 record, for every i: the codes times their
// block's ue8m0 scale. code value * scale is exact in fp32 and in bf16 (4 significant bits; the
// 1e-4 amax floor keeps it normal), so no rounding step is needed to equal fp8_dequant.
template <class Out>
inline void fp8_latent_vectors(const uint8_t* rec, int64_t kv_lora, Out&& out) {
  for (int64_t blk = 0; blk < kv_lora / kQuantBlock; ++blk) {
    float scale;
    std::memcpy(&scale, rec + kv_lora + blk * int64_t(sizeof(float)), sizeof(float));
    const simd::vf sv = simd::set1(scale * simd::kFp8Unscale);
    for (int64_t i = blk * kQuantBlock; i < (blk + 1) * kQuantBlock; i += simd::kWidth)
      out(i, simd::mul(simd::load_fp8(rec + i), sv));
  }
}

// A record's k_pe (bf16), after c_kv and, for FP8, its scales.
inline const uint8_t* latent_rope(const uint8_t* rec, const LatentCacheView& view) {
  return rec + (view.fmt == LatentFormat::bf16 ? 2 * view.kv_lora
                                               : view.kv_lora + view.kv_lora / kQuantBlock * int64_t(sizeof(float)));
}

}  // namespace

void latent_read(const LatentCacheView& view, int64_t pos, float* c_kv, float* k_pe) {
  using simd::kWidth;
  const uint8_t* rec = record_at(view.arena, view.pages, view.record_bytes, pos);
  const int64_t kv_lora = view.kv_lora;
  if (view.fmt == LatentFormat::bf16) {
    int64_t i = 0;
    for (; i + kWidth <= kv_lora; i += kWidth) {
      uint16_t b[kWidth];
      std::memcpy(b, rec + 2 * i, sizeof(b));
      simd::store(c_kv + i, simd::load_bf16(b));
    }
    for (; i < kv_lora; ++i) {
      uint16_t b;
      std::memcpy(&b, rec + 2 * i, 2);
      c_kv[i] = bf16_to_float(b);
    }
  } else {
    fp8_latent_vectors(rec, kv_lora, [&](int64_t i, simd::vf v) { simd::store(c_kv + i, v); });
  }
  const uint8_t* pe = latent_rope(rec, view);
  for (int64_t i = 0; i < view.rope_dim; ++i) {
    uint16_t b;
    std::memcpy(&b, pe + 2 * i, 2);
    k_pe[i] = bf16_to_float(b);
  }
}

namespace {

// latent_read's values as score elements (bf16 exactly: FP8 codes times power-of-two scales, or
// bf16 already).
void latent_read_scores(const LatentCacheView& view, int64_t pos, ScoreElem* c_kv, ScoreElem* k_pe) {
#if defined(__AVX512BF16__)
  const uint8_t* rec = record_at(view.arena, view.pages, view.record_bytes, pos);
  if (view.fmt == LatentFormat::bf16) {
    std::memcpy(c_kv, rec, size_t(2 * view.kv_lora));
  } else {
    fp8_latent_vectors(rec, view.kv_lora, [&](int64_t i, simd::vf v) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c_kv + i), __m256i(_mm512_cvtneps_pbh(v)));
    });
  }
  std::memcpy(k_pe, latent_rope(rec, view), size_t(2 * view.rope_dim));
#else
  latent_read(view, pos, c_kv, k_pe);
#endif
}

}  // namespace

void sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                       const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat) {
  const int64_t kv_lora = view.kv_lora, rope = view.rope_dim;
  if (n_sel <= 0) {
    std::fill(o_lat, o_lat + n_heads * kv_lora, 0.0f);
    return;
  }
  // One range of heads per thread: every range decodes all the selected records (twice), so more,
  // smaller ranges would only repeat that work; whole blocks of kHeadBlock share each key load.
  const int64_t per_thread = (n_heads + num_threads() - 1) / num_threads();
  const int64_t grain = (per_thread + kHeadBlock - 1) / kHeadBlock * kHeadBlock;
  parallel_for(n_heads, [&](int64_t h0, int64_t h1) {
    thread_local std::vector<float> ckv, kpe, p;
    ckv.resize(static_cast<size_t>(kTile * kv_lora));
    kpe.resize(static_cast<size_t>(kTile * rope));
    p.resize(static_cast<size_t>((h1 - h0) * n_sel));
    auto decode = [&](int64_t j0, int64_t n) {
      for (int64_t j = 0; j < n; ++j) latent_read(view, sel[j0 + j], ckv.data() + j * kv_lora, kpe.data() + j * rope);
    };
    // Pass 1: this range's queries converted to score elements once, each tile of keys decoded.
    thread_local std::vector<ScoreElem> qs, qpes, cks, kpes;
    qs.resize(static_cast<size_t>((h1 - h0) * kv_lora));
    qpes.resize(static_cast<size_t>((h1 - h0) * rope));
    cks.resize(static_cast<size_t>(kTile * kv_lora));
    kpes.resize(static_cast<size_t>(kTile * rope));
    for (int64_t i = 0; i < (h1 - h0) * kv_lora; ++i) qs[size_t(i)] = to_score_elem(q_abs[h0 * kv_lora + i]);
    for (int64_t i = 0; i < (h1 - h0) * rope; ++i) qpes[size_t(i)] = to_score_elem(q_pe[h0 * rope + i]);
    for (int64_t j0 = 0; j0 < n_sel; j0 += kTile) {
      const int64_t n = std::min(kTile, n_sel - j0);
      for (int64_t j = 0; j < n; ++j)
        latent_read_scores(view, sel[j0 + j], cks.data() + j * kv_lora, kpes.data() + j * rope);
      for (int64_t h = h0; h < h1; h += kHeadBlock) {
        const int hb = int(std::min<int64_t>(kHeadBlock, h1 - h));
        const ScoreElem* qh = qs.data() + (h - h0) * kv_lora;
        const ScoreElem* qpeh = qpes.data() + (h - h0) * rope;
        for (int64_t j = 0; j < n; ++j) {
          float s[kHeadBlock], s_pe[kHeadBlock];
          if (hb == kHeadBlock) {
            dot_rows<kHeadBlock>(qh, kv_lora, cks.data() + j * kv_lora, kv_lora, s);
            dot_rows<kHeadBlock>(qpeh, rope, kpes.data() + j * rope, rope, s_pe);
          } else {
            for (int r = 0; r < hb; ++r) {
              dot_rows<1>(qh + r * kv_lora, kv_lora, cks.data() + j * kv_lora, kv_lora, s + r);
              dot_rows<1>(qpeh + r * rope, rope, kpes.data() + j * rope, rope, s_pe + r);
            }
          }
          for (int r = 0; r < hb; ++r) p[(h + r - h0) * n_sel + j0 + j] = (s[r] + s_pe[r]) * softmax_scale;
        }
      }
    }
    for (int64_t h = h0; h < h1; ++h) softmax(p.data() + (h - h0) * n_sel, n_sel, p.data() + (h - h0) * n_sel);
    std::fill(o_lat + h0 * kv_lora, o_lat + h1 * kv_lora, 0.0f);
    for (int64_t j0 = 0; j0 < n_sel; j0 += kTile) {
      const int64_t n = std::min(kTile, n_sel - j0);
      decode(j0, n);
      for (int64_t h = h0; h < h1; h += kHeadBlock) {
        const float* ph = p.data() + (h - h0) * n_sel + j0;
        if (h + kHeadBlock <= h1) {
          accumulate_rows<kHeadBlock>(ph, n_sel, ckv.data(), kv_lora, n, kv_lora, o_lat + h * kv_lora, kv_lora);
        } else {
          for (int64_t r = 0; r < h1 - h; ++r)
            accumulate_rows<1>(ph + r * n_sel, n_sel, ckv.data(), kv_lora, n, kv_lora, o_lat + (h + r) * kv_lora, kv_lora);
        }
      }
    }
    for (int64_t i = h0 * kv_lora; i < h1 * kv_lora; ++i) o_lat[i] = round_bf16(o_lat[i]);
  }, grain);
}

void sparse_mha(const float* q, int64_t n_heads, int64_t nope, int64_t rope, int64_t v_dim, const float* kv,
                int64_t ld_kv, const float* k_pe, int64_t ld_pe, const int32_t* sel, int64_t n_sel,
                float softmax_scale, float* o) {
  const int64_t head_kv = nope + v_dim;
  parallel_for(n_heads, [&](int64_t h0, int64_t h1) {
    thread_local std::vector<float> p;
    p.resize(static_cast<size_t>(n_sel));
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + h * (nope + rope);
      for (int64_t j = 0; j < n_sel; ++j) {
        const float* kvt = kv + int64_t(sel[j]) * ld_kv + h * head_kv;
        const float s = simd::dot(qh, kvt, nope) + simd::dot(qh + nope, k_pe + int64_t(sel[j]) * ld_pe, rope);
        p[j] = s * softmax_scale;
      }
      float* oh = o + h * v_dim;
      std::fill(oh, oh + v_dim, 0.0f);
      if (n_sel == 0) continue;
      softmax(p.data(), n_sel, p.data());
      for (int64_t j = 0; j < n_sel; ++j) simd::axpy(p[j], kv + int64_t(sel[j]) * ld_kv + h * head_kv + nope, oh, v_dim);
      for (int64_t i = 0; i < v_dim; ++i) oh[i] = round_bf16(oh[i]);
    }
  });
}

}  // namespace dsa::cpu
