// FP8 block quantisation (see quant.hpp).
#include "kernels/cpu/quant.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/dtypes.hpp"

namespace dsa::cpu {

float ue8m0_scale(float amax) {
  const float ratio = std::max(amax, 1e-4f) / fp8_e4m3_max;
  int e = 0;
  const float m = std::frexp(ratio, &e);  // ratio = m * 2^e, m in [0.5, 1)
  return std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
}

namespace {

float block_scale(const float* x, int64_t block) {
  float amax = 0.0f;
  for (int64_t i = 0; i < block; ++i) amax = std::max(amax, std::fabs(x[i]));
  return ue8m0_scale(amax);
}

inline uint8_t quantise(float x, float scale) {
  return float_to_fp8_e4m3(std::clamp(x / scale, -fp8_e4m3_max, fp8_e4m3_max));
}

}  // namespace

void act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales) {
  for (int64_t b0 = 0, bi = 0; b0 < n; b0 += block, ++bi) {
    const float s = block_scale(x + b0, block);
    scales[bi] = s;
    for (int64_t i = 0; i < block; ++i) codes[b0 + i] = quantise(x[b0 + i], s);
  }
}

void fp8_dequant(const uint8_t* codes, const float* scales, int64_t n, int64_t block, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(fp8_e4m3_to_float(codes[i]) * scales[i / block]);
}

void fp8_roundtrip(const float* x, int64_t n, int64_t block, float* y) {
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const float s = block_scale(x + b0, block);
    for (int64_t i = 0; i < block; ++i) y[b0 + i] = round_bf16(fp8_e4m3_to_float(quantise(x[b0 + i], s)) * s);
  }
}

}  // namespace dsa::cpu
