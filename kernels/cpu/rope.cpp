// RoPE with YaRN frequencies (see rope.hpp). fp32 arithmetic in the reference's order.
#include "kernels/cpu/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/dtypes.hpp"

namespace dsa::cpu {

std::vector<float> yarn_inv_freq(int64_t rope_dim, double theta, double factor, int64_t original_max_pos,
                                 double beta_fast, double beta_slow) {
  const int64_t half = rope_dim / 2;
  auto corr_dim = [&](double n_rot) {
    return double(rope_dim) * std::log(double(original_max_pos) / (n_rot * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(theta));
  };
  const double low = std::max(std::floor(corr_dim(beta_fast)), 0.0);
  double high = std::min(std::ceil(corr_dim(beta_slow)), double(rope_dim - 1));
  if (low == high) high += 0.001;
  const float span = float(high - low);
  std::vector<float> out(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j) {
    const float expo = float(2 * j) / float(rope_dim);
    const float freq = 1.0f / std::pow(float(theta), expo);
    const float ramp = std::clamp((float(j) - float(low)) / span, 0.0f, 1.0f);
    const float scaled = freq / float(factor) * ramp;
    const float kept = freq * (1.0f - ramp);
    out[j] = scaled + kept;
  }
  return out;
}

void apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                int64_t dim, const int64_t* pos, const float* inv_freq, RopeLayout layout) {
  const int64_t half = dim / 2;
  thread_local std::vector<float> cs;
  cs.resize(static_cast<size_t>(dim));
  for (int64_t t = 0; t < n_tok; ++t) {
    const float p = float(pos[t]);
    for (int64_t j = 0; j < half; ++j) {
      const float ang = p * inv_freq[j];
      cs[j] = std::cos(ang);
      cs[half + j] = std::sin(ang);
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + t * tok_stride + h * head_stride;
      // Element pairs (a, b): interleaved (2j, 2j+1), rotate-half (j, j+half).
      const int64_t step = layout == RopeLayout::interleaved ? 2 : 1;
      const int64_t off = layout == RopeLayout::interleaved ? 1 : half;
      for (int64_t j = 0; j < half; ++j) {
        float& a = v[j * step];
        float& b = v[j * step + off];
        const float c = cs[j], s = cs[half + j];
        const float ac = a * c, bs = b * s, as = a * s, bc = b * c;
        a = round_bf16(ac - bs);
        b = round_bf16(as + bc);
      }
    }
  }
}

}  // namespace dsa::cpu
