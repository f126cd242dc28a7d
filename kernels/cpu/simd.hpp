// Internal to the CPU kernels: the few vector operations the hot loops need, on the widest set the
// compiler targets (AVX-512, AVX2+FMA+F16C, else eight lanes in a plain array with fused
// multiply-adds, so a portable build sums in the same shape and rounding as AVX2). Not part of the
// kernels' API. Conversions from storage formats are exact.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/dtypes.hpp"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
// GCC 12 flags the headers' own _mm*_undefined_* placeholders as uninitialised under -Werror.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace dsa::cpu::simd {

// load_fp8 returns the e4m3 value times 2^-8 (the codes are widened through fp16, whose exponent
// bias is 8 larger); callers fold kFp8Unscale into a scale they apply anyway.
inline constexpr float kFp8Unscale = 256.0f;

#if defined(__AVX512F__)
inline constexpr int kWidth = 16;
using vf = __m512;
inline vf zero() { return _mm512_setzero_ps(); }
inline vf set1(float a) { return _mm512_set1_ps(a); }
inline vf load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, vf v) { _mm512_storeu_ps(p, v); }
inline vf add(vf a, vf b) { return _mm512_add_ps(a, b); }
inline vf mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
inline vf fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf max(vf a, vf b) { return _mm512_max_ps(a, b); }
inline float hsum(vf v) {
  // Folds by shuffles (GCC 12 warns on _mm512_reduce_add_ps under -Werror).
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline vf load_bf16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline vf load_fp8(const uint8_t* p) {
  // Sign-extended byte << 7: sign at bits 15 and 14, exponent+mantissa at 7..13; clear bit 14.
  const __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(s, 7), _mm256_set1_epi16(int16_t(0xBF80))));
}
// The sums of N <= 16 vectors in one vector: lane 4q + t holds hsum(v[4t + q]) bit for bit (the
// same additions in the same tree: lanes i and i+8, then i+4, i+2, i+1), with the vectors' lanes
// interleaved so one shuffle and one add serve two, four, then eight of them at each level. Lanes
// of vectors past N hold 0.
template <int N>
inline vf hsum_transposed(const vf* v) {
  static_assert(N >= 1 && N <= 16);
  constexpr int n1 = (N + 1) / 2, n2 = (n1 + 1) / 2, n3 = (n2 + 1) / 2;
  const auto at = [](const vf* a, int n, int j) { return j < n ? a[j] : zero(); };
  vf l1[8], l2[4], l3[2];
  for (int j = 0; j < n1; ++j) {  // lanes i + i+8: [v[2j] (8 lanes), v[2j+1] (8 lanes)]
    const vf a = v[2 * j], b = at(v, N, 2 * j + 1);
    l1[j] =
        add(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  for (int j = 0; j < n2; ++j) {  // + i+4: a quarter (4 lanes) per vector 4j..4j+3
    const vf a = l1[2 * j], b = at(l1, n1, 2 * j + 1);
    l2[j] =
        add(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  for (int j = 0; j < n3; ++j) {  // + i+2: quarter q holds vectors 8j+q and 8j+4+q, two lanes each
    const vf a = l2[2 * j], b = at(l2, n2, 2 * j + 1);
    l3[j] = add(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  const vf a = l3[0], b = at(l3, n3, 1);  // + i+1
  return add(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

// out[j] = hsum(v[j]) for j < N <= 16, bit for bit.
template <int N>
inline void hsum_many(const vf* v, float* out) {
  alignas(64) float sums[16];
  store(sums, hsum_transposed<N>(v));
  for (int j = 0; j < N; ++j) out[j] = sums[4 * (j % 4) + j / 4];
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
inline constexpr int kWidth = 8;
using vf = __m256;
inline vf zero() { return _mm256_setzero_ps(); }
inline vf set1(float a) { return _mm256_set1_ps(a); }
inline vf load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, vf v) { _mm256_storeu_ps(p, v); }
inline vf add(vf a, vf b) { return _mm256_add_ps(a, b); }
inline vf mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
inline vf fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf max(vf a, vf b) { return _mm256_max_ps(a, b); }
inline float hsum(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline vf load_bf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline vf load_fp8(const uint8_t* p) {
  const __m128i s = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(s, 7), _mm_set1_epi16(int16_t(0xBF80))));
}
#else
// Portable: eight lanes in a plain array, reduced in the AVX2 order, so the sums keep the same
// shape (eight partial sums per row, not one long chain) and about the same rounding error.
inline constexpr int kWidth = 8;
struct vf {
  float v[8];
};
inline vf zero() { return vf{}; }
inline vf set1(float a) {
  vf r;
  for (float& x : r.v) x = a;
  return r;
}
inline vf load(const float* p) {
  vf r;
  for (int i = 0; i < 8; ++i) r.v[i] = p[i];
  return r;
}
inline void store(float* p, vf v) {
  for (int i = 0; i < 8; ++i) p[i] = v.v[i];
}
inline vf add(vf a, vf b) {
  for (int i = 0; i < 8; ++i) a.v[i] += b.v[i];
  return a;
}
inline vf mul(vf a, vf b) {
  for (int i = 0; i < 8; ++i) a.v[i] *= b.v[i];
  return a;
}
inline vf fma(vf a, vf b, vf c) {  // fused, as the vector units: one rounding
  for (int i = 0; i < 8; ++i) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
  return c;
}
inline vf max(vf a, vf b) {
  for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
  return a;
}
inline float hsum(vf v) {
  return ((v.v[0] + v.v[4]) + (v.v[2] + v.v[6])) + ((v.v[1] + v.v[5]) + (v.v[3] + v.v[7]));
}
inline vf load_bf16(const uint16_t* p) {
  vf r;
  for (int i = 0; i < 8; ++i) r.v[i] = bf16_to_float(p[i]);
  return r;
}
inline vf load_fp8(const uint8_t* p) {
  vf r;
  for (int i = 0; i < 8; ++i) r.v[i] = fp8_e4m3_to_float(p[i]) / kFp8Unscale;
  return r;
}
#endif

// BF16 pair dot products (AVX512_BF16): each lane of dot_bf16 adds the products of two adjacent
// bf16 pairs to an fp32 accumulator, twice the multiply-adds of an fp32 fma per instruction. Used
// where the operands are exact in bf16 (FP8 codes and values), so only the order of the fp32
// additions differs from the fp32 path.
#if defined(__AVX512BF16__)
inline constexpr bool kBf16Dot = true;
inline constexpr int kBf16Width = 32;  // bf16 values per dot_bf16
using vbh = __m512bh;
inline vbh load_bf16x32(const uint16_t* p) { return vbh(_mm512_loadu_si512(p)); }
inline void store_bf16x32(uint16_t* p, vbh v) { _mm512_storeu_si512(p, __m512i(v)); }
// The bf16 bits of the e4m3 code in each 16-bit lane of c (codes 0..255), by integer operations:
// the sign, then the exponent rebiased from 7 to 127 for normals; the seven subnormals m * 2^-9
// (and zero) from a table. Exact (unscaled, unlike load_fp8).
inline __m512i fp8_words_to_bf16(__m512i c) {
  const __m512i mag = _mm512_and_si512(c, _mm512_set1_epi16(0x7f));
  const __m512i normal = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(int16_t(120 << 7)));
  const __m512i subnormals = _mm512_setr_epi32(0x3B000000, 0x3BC03B80, 0x3C203C00, 0x3C603C40, 0, 0, 0, 0, 0, 0, 0, 0,
                                               0, 0, 0, 0);  // m = 0..7, two per dword
  const __m512i value =
      _mm512_mask_permutexvar_epi16(normal, _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(8)), mag, subnormals);
  return _mm512_or_si512(value, _mm512_slli_epi16(_mm512_and_si512(c, _mm512_set1_epi16(0x80)), 8));
}
// 32 e4m3 codes as their bf16 values, exactly.
inline vbh load_fp8_bf16(const uint8_t* p) {
  return vbh(fp8_words_to_bf16(_mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))));
}
inline vf dot_bf16(vbh a, vbh b, vf acc) { return _mm512_dpbf16_ps(acc, a, b); }
#else
inline constexpr bool kBf16Dot = false;
#endif

#if !defined(__AVX512F__)
// out[j] = hsum(v[j]) for j < N.
template <int N>
inline void hsum_many(const vf* v, float* out) {
  for (int j = 0; j < N; ++j) out[j] = hsum(v[j]);
}
#endif

// Dot product of two fp32 rows of length n (any n; the tail is scalar).
inline float dot(const float* a, const float* b, int64_t n) {
  vf acc0 = zero(), acc1 = zero();
  int64_t i = 0;
  for (; i + 2 * kWidth <= n; i += 2 * kWidth) {
    acc0 = fma(load(a + i), load(b + i), acc0);
    acc1 = fma(load(a + i + kWidth), load(b + i + kWidth), acc1);
  }
  for (; i + kWidth <= n; i += kWidth) acc0 = fma(load(a + i), load(b + i), acc0);
  float s = hsum(add(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y[0..n) += a * x[0..n)
inline void axpy(float a, const float* x, float* y, int64_t n) {
  const vf va = set1(a);
  int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) store(y + i, fma(va, load(x + i), load(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace dsa::cpu::simd
