// Indexer key cache and scores (see indexer.hpp).
// indexer_scores works one 64-token page at a time: the page's keys are decoded once into a
// dimension-major tile kt[d][s] (fp32, or bf16 pairs of dimensions with AVX512_BF16), so for each
// head the logits of a run of keys accumulate in vector lanes (one key per lane) without horizontal
// sums; the ReLU, the head weight and the sum over heads then stay in registers too. Every query is
// scored against the tile before moving on.
#include "kernels/cpu/indexer.hpp"

#include <algorithm>
#include <cstring>
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

constexpr int64_t kPage = kIndexerPageTokens;
constexpr int kVecs = 4;                          // vectors of keys per chunk
constexpr int64_t kChunk = int64_t(kVecs) * kWidth;  // keys per register block
static_assert(kPage % kChunk == 0);

inline const uint8_t* page_of(const IndexerCacheView& v, int64_t pos) {
  return v.arena + size_t(v.pages[pos / kPage]) * v.page_bytes;
}

// The tile's element and the query's matching form. Where the CPU has BF16 dot products
// (AVX512_BF16) a tile row holds two dimensions of each key as a bf16 pair (row d / 2: dimensions
// d and d + 1, d in the low half) and the query is read as the same pairs, so one instruction
// multiplies both; elsewhere a row holds one dimension in fp32. FP8 values are exact in both.
#if defined(__AVX512BF16__)
constexpr int64_t kDimsPerRow = 2;
using TileElem = uint32_t;  // a bf16 pair
using QueryElem = uint32_t;
inline vf add_products(QueryElem q, const TileElem* keys, vf acc) {
  return simd::dot_bf16(simd::vbh(_mm512_set1_epi32(int(q))),
                        simd::load_bf16x32(reinterpret_cast<const uint16_t*>(keys)), acc);
}
#else
constexpr int64_t kDimsPerRow = 1;
using TileElem = float;
using QueryElem = float;
inline vf add_products(QueryElem q, const TileElem* keys, vf acc) {
  return simd::fma(simd::set1(q), simd::load(keys), acc);
}
#endif

// Adds to score[] the weighted ReLU logits of HB consecutive heads for keys [c0, c0 + kChunk) of a
// decoded tile of `rows` rows; heads are added in order, as the reference's sum. score lives in
// memory between head blocks so that the accumulators and the kVecs key vectors of one row stay in
// registers. q: the HB heads' queries, `rows` elements each.
template <int HB>
inline void add_heads(const QueryElem* q, const float* w, int64_t rows, const TileElem* kt, int64_t c0, float* score) {
  vf acc[HB][kVecs];
  for (int hb = 0; hb < HB; ++hb)
    for (int v = 0; v < kVecs; ++v) acc[hb][v] = simd::zero();
  for (int64_t d = 0; d < rows; ++d) {
    const TileElem* row = kt + d * kPage + c0;
    for (int hb = 0; hb < HB; ++hb)
      for (int v = 0; v < kVecs; ++v) acc[hb][v] = add_products(q[hb * rows + d], row + v * kWidth, acc[hb][v]);
  }
  const vf zero = simd::zero();
  for (int v = 0; v < kVecs; ++v) {
    vf sum = simd::load(score + v * kWidth);
    for (int hb = 0; hb < HB; ++hb) sum = simd::add(sum, simd::mul(simd::max(acc[hb][v], zero), simd::set1(w[hb])));
    simd::store(score + v * kWidth, sum);
  }
}

// Scores of one query against keys [c0, c0 + kChunk) of a decoded tile, times the key scales.
inline void score_chunk(const QueryElem* q, const float* w, int64_t n_heads, int64_t rows, const TileElem* kt,
                        int64_t c0, const float* kscale, float* out) {
  constexpr int kHeadBlock = kWidth >= 16 ? 4 : 2;  // accumulators that fit the register file
  alignas(64) float score[kChunk] = {};
  int64_t h = 0;
  for (; h + kHeadBlock <= n_heads; h += kHeadBlock) add_heads<kHeadBlock>(q + h * rows, w + h, rows, kt, c0, score);
  for (; h < n_heads; ++h) add_heads<1>(q + h * rows, w + h, rows, kt, c0, score);
  for (int v = 0; v < kVecs; ++v)
    simd::store(out + v * kWidth, simd::mul(simd::load(score + v * kWidth), simd::load(kscale + c0 + v * kWidth)));
}

// Decodes a page's key codes into kt[d][s] (fp32, or bf16 pairs kt[d / 2][s]; rows s >= keys are
// zero), scaled by 1 / kTileUnscale. AVX-512 transposes blocks of 16 keys in registers (or gathers
// a partial block), then widens the codes through fp16 (see simd::load_fp8) or, with AVX512_BF16,
// rewrites them as bf16 bits directly; AVX2 transposes 8 x 8 blocks in registers and widens through
// fp16; elsewhere a table lookup per code.
#if defined(__AVX512F__)
#if defined(__AVX512BF16__)
constexpr float kTileUnscale = 1.0f;  // bf16 holds the codes' values exactly
#else
constexpr float kTileUnscale = simd::kFp8Unscale;
#endif

// r[i] lane j -> r[j] lane i: a 16 x 16 transpose of 32-bit elements in four rounds of interleaves.
inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16], v[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      v[8 * i + j] = _mm512_shuffle_i32x4(u[8 * i + j], u[8 * i + 4 + j], 0x88);
      v[8 * i + 4 + j] = _mm512_shuffle_i32x4(u[8 * i + j], u[8 * i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_i32x4(v[j], v[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(v[j], v[8 + j], 0xdd);
  }
}

#if defined(__AVX512BF16__)
// Dimensions d..d+3 of keys s0..s0+15 into the tile as bf16 pairs (d, d + 1) and (d + 2, d + 3):
// lane s of g holds key s0 + s's four codes.
inline void store_dims(__m512i g, int64_t d, int64_t s0, TileElem* kt) {
  const __m512i bytes = _mm512_set1_epi32(0x00FF00FF);
  const __m512i even = simd::fp8_words_to_bf16(_mm512_and_si512(g, bytes));                       // d, d + 2
  const __m512i odd = simd::fp8_words_to_bf16(_mm512_and_si512(_mm512_srli_epi32(g, 8), bytes));  // d + 1, d + 3
  const __m512i low = _mm512_set1_epi32(0x0000FFFF);
  _mm512_storeu_si512(kt + d / 2 * kPage + s0,
                      _mm512_or_si512(_mm512_and_si512(even, low), _mm512_slli_epi32(odd, 16)));
  _mm512_storeu_si512(kt + (d / 2 + 1) * kPage + s0,
                      _mm512_or_si512(_mm512_srli_epi32(even, 16), _mm512_andnot_si512(low, odd)));
}
#else
// Dimensions d..d+3 of keys s0..s0+15 into the tile: lane s of g holds key s0 + s's four codes,
// widened through fp16 (see simd::load_fp8).
inline void store_dims(__m512i g, int64_t d, int64_t s0, TileElem* kt) {
  const __m512i low7 = _mm512_set1_epi32(0x7f), sign = _mm512_set1_epi32(0x80);
  for (int j = 0; j < 4; ++j) {
    const __m512i b = _mm512_srli_epi32(g, 8 * j);
    const __m512i h = _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(b, low7), 7),
                                      _mm512_slli_epi32(_mm512_and_si512(b, sign), 8));
    _mm512_storeu_ps(kt + (d + j) * kPage + s0, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)));
  }
}
#endif

// Whole blocks of 16 keys x 64 dimensions are transposed in registers (as dwords of four codes);
// a partial block of keys, or dimensions not a multiple of 64, gathers four dimensions of 16 keys
// per load. Both widen the codes through fp16 (see simd::load_fp8).
void decode_tile(const uint8_t* page, int64_t dim, int64_t keys, TileElem* kt) {
  const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(int(dim)));
  for (int64_t s0 = 0; s0 < kPage; s0 += 16) {
    const int64_t n = std::clamp<int64_t>(keys - s0, 0, 16);
    if (n == 16 && dim % 64 == 0) {
      for (int64_t d0 = 0; d0 < dim; d0 += 64) {
        __m512i r[16];
        for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(page + (s0 + i) * dim + d0);
        transpose16(r);
        for (int c = 0; c < 16; ++c) store_dims(r[c], d0 + 4 * c, s0, kt);
      }
      continue;
    }
    const __mmask16 valid = __mmask16((1u << n) - 1u);
    for (int64_t d = 0; d < dim; d += 4)
      store_dims(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, offsets, page + s0 * dim + d, 1), d, s0,
                 kt);
  }
}
#elif defined(__AVX2__) && defined(__F16C__)
constexpr float kTileUnscale = simd::kFp8Unscale;
// The low 8 codes of v as fp32 values times 2^-8 (simd::load_fp8's widening).
inline __m256 widen_fp8(__m128i v) {
  const __m128i s = _mm_cvtepi8_epi16(v);
  return _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(s, 7), _mm_set1_epi16(int16_t(0xBF80))));
}
// Blocks of 8 keys x 8 dimensions are transposed in registers (three rounds of byte, word and
// dword interleaves) and widened a dimension at a time; a partial block of keys goes by table.
// kt is 32-byte aligned (whole aligned stores: split unaligned ones cost a second store each).
void decode_tile(const uint8_t* page, int64_t dim, int64_t keys, float* kt) {
  const auto& table = dsa::detail::fp8_e4m3_table();
  int64_t s0 = 0;
  if (dim % 8 == 0) {
    for (; s0 + 8 <= keys; s0 += 8) {
      const uint8_t* base = page + s0 * dim;
      for (int64_t d = 0; d < dim; d += 8) {
        __m128i r[8];
        for (int j = 0; j < 8; ++j) r[j] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(base + j * dim + d));
        const __m128i a0 = _mm_unpacklo_epi8(r[0], r[1]), a1 = _mm_unpacklo_epi8(r[2], r[3]);
        const __m128i a2 = _mm_unpacklo_epi8(r[4], r[5]), a3 = _mm_unpacklo_epi8(r[6], r[7]);
        const __m128i b0 = _mm_unpacklo_epi16(a0, a1), b1 = _mm_unpackhi_epi16(a0, a1);
        const __m128i b2 = _mm_unpacklo_epi16(a2, a3), b3 = _mm_unpackhi_epi16(a2, a3);
        // c[j]: dimension d + 2j for keys s0..s0+7 in bytes 0-7, dimension d + 2j + 1 in bytes 8-15.
        const __m128i c[4] = {_mm_unpacklo_epi32(b0, b2), _mm_unpackhi_epi32(b0, b2), _mm_unpacklo_epi32(b1, b3),
                              _mm_unpackhi_epi32(b1, b3)};
        for (int j = 0; j < 4; ++j) {
          _mm256_store_ps(kt + (d + 2 * j) * kPage + s0, widen_fp8(c[j]));
          _mm256_store_ps(kt + (d + 2 * j + 1) * kPage + s0, widen_fp8(_mm_unpackhi_epi64(c[j], c[j])));
        }
      }
    }
  }
  for (int64_t s = s0; s < kPage; ++s)
    for (int64_t d = 0; d < dim; ++d) kt[d * kPage + s] = s < keys ? table[page[s * dim + d]] / kTileUnscale : 0.0f;
}
#else
constexpr float kTileUnscale = 1.0f;
void decode_tile(const uint8_t* page, int64_t dim, int64_t keys, float* kt) {
  const auto& table = dsa::detail::fp8_e4m3_table();
  for (int64_t s = 0; s < kPage; ++s)
    for (int64_t d = 0; d < dim; ++d) kt[d * kPage + s] = s < keys ? table[page[s * dim + d]] : 0.0f;
}
#endif

}  // namespace

void indexer_fold_weights(float* w, const float* q_scale, int64_t n, float head_scale, float rot_scale) {
  for (int64_t r = 0; r < n; ++r) w[r] = w[r] * head_scale * q_scale[r] * rot_scale;
}

void indexer_write(uint8_t* arena, const int32_t* pages, int64_t head_dim, int64_t pos, const float* k) {
  DSA_KERNEL_REQUIRE(head_dim <= kQuantBlock, "the indexer cache holds one scale per key: head_dim <= 128");
  uint8_t* page = arena + size_t(pages[pos / kPage]) * indexer_page_bytes(head_dim);
  const int64_t row = pos % kPage;
  float scale = 0.0f;
  act_quant(k, head_dim, head_dim, page + row * head_dim, &scale);
  std::memcpy(page + kPage * head_dim + row * int64_t(sizeof(float)), &scale, sizeof(float));
}

void indexer_read(const IndexerCacheView& view, int64_t pos, uint8_t* codes, float* scale) {
  const uint8_t* page = page_of(view, pos);
  const int64_t row = pos % kPage;
  std::memcpy(codes, page + row * view.head_dim, size_t(view.head_dim));
  std::memcpy(scale, page + kPage * view.head_dim + row * int64_t(sizeof(float)), sizeof(float));
}

void indexer_scores(const uint8_t* q_codes, const float* w, int64_t n_q, int64_t n_heads,
                    const IndexerCacheView& view, const int64_t* n_keys, float* scores, int64_t ld_scores) {
  const int64_t dim = view.head_dim;
  DSA_KERNEL_REQUIRE(dim % 4 == 0, "indexer_scores needs head_dim to be a multiple of 4");
  int64_t max_keys = 0;
  for (int64_t i = 0; i < n_q; ++i) max_keys = std::max(max_keys, n_keys[i]);
  if (max_keys == 0) return;
  // The queries' e4m3 values in the tile's form (fp32, or bf16 pairs), decoded once.
  const int64_t rows = dim / kDimsPerRow;
  thread_local std::vector<QueryElem> qf;
  qf.resize(static_cast<size_t>(n_q * n_heads * rows));
  for (size_t i = 0; i < qf.size(); ++i) {
#if defined(__AVX512BF16__)
    qf[i] = uint32_t(float_to_bf16(fp8_e4m3_to_float(q_codes[2 * i]))) |
            uint32_t(float_to_bf16(fp8_e4m3_to_float(q_codes[2 * i + 1]))) << 16;
#else
    qf[i] = fp8_e4m3_to_float(q_codes[i]);
#endif
  }
  const QueryElem* qp = qf.data();
  // The head weights absorb the tile's power-of-two unscale: relu(l * 2^-8) * (w * 2^8) is exact.
  thread_local std::vector<float> wf;
  wf.resize(static_cast<size_t>(n_q * n_heads));
  for (size_t i = 0; i < wf.size(); ++i) wf[i] = w[i] * kTileUnscale;
  const float* wp = wf.data();
  const int64_t n_pages = (max_keys + kPage - 1) / kPage;
  parallel_for(n_pages, [&](int64_t p0, int64_t p1) {
    thread_local std::vector<TileElem> kt_buf;
    kt_buf.resize(static_cast<size_t>(rows * kPage + 16));
    TileElem* kt = kt_buf.data() + (16 - (reinterpret_cast<uintptr_t>(kt_buf.data()) / sizeof(TileElem)) % 16) % 16;
    float kscale[kPage];
    float out[kChunk];
    for (int64_t p = p0; p < p1; ++p) {
      const uint8_t* page = view.arena + size_t(view.pages[p]) * view.page_bytes;
      const int64_t keys = std::min(kPage, max_keys - p * kPage);
      decode_tile(page, dim, keys, kt);
      std::memcpy(kscale, page + kPage * dim, sizeof(kscale));
      for (int64_t s = keys; s < kPage; ++s) kscale[s] = 0.0f;
      for (int64_t i = 0; i < n_q; ++i) {
        const int64_t valid = std::min(kPage, n_keys[i] - p * kPage);  // keys of this page for query i
        for (int64_t c0 = 0; c0 < valid; c0 += kChunk) {
          score_chunk(qp + i * n_heads * rows, wp + i * n_heads, n_heads, rows, kt, c0, kscale, out);
          const int64_t n_out = std::min(kChunk, valid - c0);
          std::memcpy(scores + i * ld_scores + p * kPage + c0, out, size_t(n_out) * sizeof(float));
        }
      }
    }
  });
}

void indexer_scores_scalar(const uint8_t* q_codes, const float* w, int64_t n_q, int64_t n_heads,
                           const IndexerCacheView& view, const int64_t* n_keys, float* scores,
                           int64_t ld_scores) {
  const int64_t dim = view.head_dim;
  std::vector<uint8_t> k(static_cast<size_t>(dim));
  for (int64_t i = 0; i < n_q; ++i)
    for (int64_t s = 0; s < n_keys[i]; ++s) {
      float kscale = 0.0f;
      indexer_read(view, s, k.data(), &kscale);
      float acc = 0.0f;
      for (int64_t h = 0; h < n_heads; ++h) {
        double logit = 0.0;  // exact
        for (int64_t d = 0; d < dim; ++d)
          logit += double(fp8_e4m3_to_float(q_codes[(i * n_heads + h) * dim + d])) * double(fp8_e4m3_to_float(k[d]));
        acc += std::max(float(logit), 0.0f) * w[i * n_heads + h];
      }
      scores[i * ld_scores + s] = kscale * acc;
    }
}

}  // namespace dsa::cpu
