// Normalisations (model-spec 3.3, 3.4). Math in fp32/fp64 as the reference; outputs bf16-rounded.
#pragma once
#include <cstdint>

namespace dsa::cpu {

// x, y: [rows, n] f32 (y may alias x); w: [n] f32.
// y = bf16(w * (x / sqrt(mean(x^2) + eps)))  (mean and normalisation in fp64, product in fp32).
void rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y);

// The fused residual form: r = x + residual (fp32); residual <- bf16(r) (the bf16 residual stream);
// y = rms_norm(r) (normalising the unrounded fp32 sum). x, residual, y: [rows, n]; y may alias x.
void add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                  float* y);

// LayerNorm (the indexer's k_norm): y = bf16((x - mean) / sqrt(var + eps) * w + b), fp64 math,
// biased variance. x, y: [rows, n]; w, b: [n].
void layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps,
                float* y);

}  // namespace dsa::cpu
