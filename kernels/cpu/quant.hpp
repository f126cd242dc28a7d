// FP8 e4m3 block quantisation with power-of-two (ue8m0) scales: the reference's act_quant with
// scale_fmt="ue8m0" (model-spec 3.2), and the FP8 round trip the reference applies to the MLA
// latent before caching (model-spec 4.3).
#pragma once
#include <cstdint>

namespace dsa::cpu {

inline constexpr int64_t kQuantBlock = 128;

// The ue8m0 scale of a block with max |x| = amax: 2^ceil(log2(max(amax, 1e-4) / 448)), where the
// ratio is computed in fp32 first (as the reference).
float ue8m0_scale(float amax);

// x: [n] f32, n % block == 0. codes: [n] e4m3; scales: [n / block], one per block of `block`
// contiguous values: codes = e4m3(clamp(x / scale, -448, 448)), round to nearest even.
void act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales);

// codes [n] e4m3 with scales [n / block] -> y [n] = code value * scale, rounded to bf16.
void fp8_dequant(const uint8_t* codes, const float* scales, int64_t n, int64_t block, float* y);

// y = fp8_dequant(act_quant(x)): the values the FP8 latent cache holds. y may alias x.
void fp8_roundtrip(const float* x, int64_t n, int64_t block, float* y);

}  // namespace dsa::cpu
