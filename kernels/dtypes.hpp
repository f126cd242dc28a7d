// Scalar number formats used by checkpoints and kernels: bf16, fp16, fp8 e4m3fn, fp8 e5m2.
// Conversions are exact where the format allows and round to nearest even otherwise, matching
// PyTorch's casts (so golden data made with torch compares bit for bit).
#pragma once
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace dsa {

struct bf16 { uint16_t bits; };

inline float bits_to_float(uint32_t b) { return std::bit_cast<float>(b); }
inline uint32_t float_to_bits(float f) { return std::bit_cast<uint32_t>(f); }

// ---- bf16 ----
inline float bf16_to_float(uint16_t h) { return bits_to_float(uint32_t(h) << 16); }
inline uint16_t float_to_bf16(float f) {
  uint32_t b = float_to_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return uint16_t((b >> 16) | 0x40);  // NaN stays quiet NaN
  b += 0x7fffu + ((b >> 16) & 1u);                                          // round to nearest even
  return uint16_t(b >> 16);
}
// Rounds a float to the nearest bf16 value (the cast-to-bf16-and-back every reference does).
inline float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// ---- fp16 (IEEE binary16) ----
inline float fp16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (mant << 13));
  return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
}
inline uint16_t float_to_fp16(float f) {
  uint32_t b = float_to_bits(f);
  const uint16_t sign = uint16_t((b >> 16) & 0x8000u);
  b &= 0x7fffffffu;
  if (b > 0x7f800000u) return sign | 0x7e00u;                     // NaN
  if (b >= 0x477ff000u) return sign | 0x7c00u;                    // overflow after rounding -> inf
  if (b < 0x38800000u) {                                          // subnormal or zero in fp16
    // Add a magic number so the FPU does the rounding at the 2^-24 grid.
    float v = bits_to_float(b) + 0.5f;                            // 0.5 = 2^-1: mantissa lsb = 2^-24
    return sign | uint16_t(float_to_bits(v) - float_to_bits(0.5f));
  }
  uint32_t mant_odd = (b >> 13) & 1u;
  b += (uint32_t(15 - 127) << 23) + 0xfffu + mant_odd;
  return sign | uint16_t(b >> 13);
}

// ---- fp8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa; no infinity; 0x7f/0xff are NaN; max 448 ----
inline constexpr float fp8_e4m3_max = 448.0f;

inline float fp8_e4m3_to_float_slow(uint8_t v) {
  const bool neg = v & 0x80;
  const int exp = (v >> 3) & 0xf;
  const int mant = v & 0x7;
  float r;
  if (exp == 0xf && mant == 0x7) return std::nanf("");
  if (exp == 0) r = std::ldexp(float(mant), -9);            // subnormal: mant/8 * 2^-6
  else r = std::ldexp(float(8 + mant), exp - 10);           // (1 + mant/8) * 2^(exp-7)
  return neg ? -r : r;
}

namespace detail {
inline const std::array<float, 256>& fp8_e4m3_table() {
  static const std::array<float, 256> t = [] {
    std::array<float, 256> a{};
    for (int i = 0; i < 256; ++i) a[i] = fp8_e4m3_to_float_slow(uint8_t(i));
    return a;
  }();
  return t;
}
}  // namespace detail

inline float fp8_e4m3_to_float(uint8_t v) { return detail::fp8_e4m3_table()[v]; }

// Round to nearest even; |f| >= 480 (halfway to the next binade) or NaN gives NaN, like torch's cast.
// Callers that quantise clamp to +-448 first, as the reference does.
inline uint8_t float_to_fp8_e4m3(float f) {
  uint32_t b = float_to_bits(f);
  const uint8_t sign = uint8_t((b >> 24) & 0x80u);
  b &= 0x7fffffffu;
  uint8_t r;
  if (b >= 0x43f00000u) {                 // >= 480.0 or inf/NaN
    r = 0x7f;
  } else if (b < (121u << 23)) {          // < 2^-6: subnormal in e4m3
    const uint32_t denorm_magic = 141u << 23;  // 2^14: puts the 2^-9 grid at the mantissa lsb
    float v = bits_to_float(b) + bits_to_float(denorm_magic);
    r = uint8_t(float_to_bits(v) - denorm_magic);
  } else {
    const uint32_t mant_odd = (b >> 20) & 1u;
    b += (uint32_t(7 - 127) << 23) + 0x7ffffu + mant_odd;
    r = uint8_t(b >> 20);
  }
  return r | sign;
}

// ---- fp8 e5m2: 1 sign, 5 exponent (bias 15), 2 mantissa (an fp16 with the low byte dropped) ----
inline float fp8_e5m2_to_float(uint8_t v) { return fp16_to_float(uint16_t(uint16_t(v) << 8)); }
// Rounds straight from fp32 (no double rounding through fp16); overflow gives infinity.
inline uint8_t float_to_fp8_e5m2(float f) {
  uint32_t b = float_to_bits(f);
  const uint8_t sign = uint8_t((b >> 24) & 0x80u);
  b &= 0x7fffffffu;
  uint8_t r;
  if (b > 0x7f800000u) {
    r = 0x7f;                              // NaN
  } else if (b >= 0x47700000u) {           // >= 61440: halfway above the max 57344
    r = 0x7c;                              // infinity
  } else if (b < (113u << 23)) {           // < 2^-14: subnormal in e5m2
    const uint32_t denorm_magic = 134u << 23;  // 2^7: puts the 2^-16 grid at the mantissa lsb
    float v = bits_to_float(b) + bits_to_float(denorm_magic);
    r = uint8_t(float_to_bits(v) - denorm_magic);
  } else {
    const uint32_t mant_odd = (b >> 21) & 1u;
    b += (uint32_t(15 - 127) << 23) + 0xfffffu + mant_odd;
    r = uint8_t(b >> 21);
  }
  return r | sign;
}

}  // namespace dsa
