// Pure math for token sampling; the sampler (temperature, RNG, penalties) lives in the engine.
#pragma once
#include <cstdint>

namespace dsa::cpu {

// y = softmax(x) over [n] in fp32, max-subtracted (stable), fp64 sum. y may alias x. At least one
// x must be finite.
void softmax(const float* x, int64_t n, float* y);

// Index of the largest of x[0..n), ties to the lower index; NaN never wins unless all are NaN (0).
int64_t argmax(const float* x, int64_t n);

// Keeps the k largest logits (ties to the lower index, as topk_positions) and sets the rest to -inf.
// k <= 0 or k >= n leaves x unchanged.
void top_k_mask(float* logits, int64_t n, int64_t k);

// Nucleus filter on probabilities (summing to 1): keeps the smallest set of the most probable tokens
// (ties to the lower index) whose total reaches top_p, zeroes the rest, and renormalises the kept
// ones. top_p >= 1 leaves probs unchanged. The most probable token is always kept.
void top_p_mask(float* probs, int64_t n, float top_p);

// Inverse-CDF draw: the first index whose running sum of probs exceeds u * total, u in [0, 1).
// Zero-probability tokens are never drawn.
int64_t sample_from_probs(const float* probs, int64_t n, float u);

}  // namespace dsa::cpu
