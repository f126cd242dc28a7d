// CUDA fast Walsh-Hadamard transform: the contract of kernels/cpu/hadamard.hpp on device pointers,
// bit-exact with it (the same fp64 butterflies in the same order, in shared memory).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda {

inline constexpr int64_t kHadamardMax = 128;

// x, y: [rows, n] f32 device (y may alias x); n a power of two <= kHadamardMax.
// y[r] = bf16((x[r] . H_n) * scale), H[i][j] = (-1)^popcount(i & j), summed in fp64.
void hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y, cudaStream_t stream);

}  // namespace dsa::cuda
