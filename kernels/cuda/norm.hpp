// CUDA normalisations: the same contracts as kernels/cpu/norm.hpp on device pointers, launched on
// `stream`. One block per row; the fp64 sums are reduced in a different order than the CPU's serial
// sums, so an output can differ from the reference by one bf16 ulp when the exact value sits on a
// rounding boundary; the bf16 residual is bit-exact.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda {

// x, y: [rows, n] f32 (y may alias x); w: [n] f32.
// y = bf16(w * (x / sqrt(mean(x^2) + eps)))  (mean and normalisation in fp64, product in fp32).
void rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y,
              cudaStream_t stream);

// r = x + residual (fp32); residual <- bf16(r); y = rms_norm(r). x, residual, y: [rows, n]; y may
// alias x.
void add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                  float* y, cudaStream_t stream);

// LayerNorm (the indexer's k_norm): y = bf16((x - mean) / sqrt(var + eps) * w + b), fp64 math,
// biased variance. x, y: [rows, n] (y may alias x); w, b: [n].
void layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps, float* y,
                cudaStream_t stream);

}  // namespace dsa::cuda
