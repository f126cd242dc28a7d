// Rotary position embedding with YaRN frequencies (model-spec 4.2). The attention softmax scale
// (with the YaRN mscale) belongs to the model config, not here.
#pragma once
#include <cstdint>
#include <vector>

namespace dsa::cpu {

// YaRN inverse frequencies [rope_dim / 2] in fp32, as the reference precompute_freqs_cis:
// base freqs theta^(-2j/rope_dim), blended towards freq/factor over the correction range given by
// beta_fast/beta_slow at original_max_pos.
std::vector<float> yarn_inv_freq(int64_t rope_dim, double theta, double factor, int64_t original_max_pos,
                                 double beta_fast, double beta_slow);

enum class RopeLayout {
  interleaved,  // pairs (x[2j], x[2j+1]): MLA q_pe and k_pe
  rotate_half,  // pairs (x[j], x[j + dim/2]): the indexer's q and k
};

// Rotates in place the rope part of x: n_tok tokens x n_heads heads; the rope vector of (t, h) starts
// at x + t*tok_stride + h*head_stride and has `dim` elements. pos: [n_tok] absolute positions.
// angle = float(pos) * inv_freq[j] in fp32; cos/sin in fp32; results rounded to bf16.
void apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                int64_t dim, const int64_t* pos, const float* inv_freq, RopeLayout layout);

}  // namespace dsa::cpu
