// CUDA FP8 e4m3 block quantisation with ue8m0 scales: the contract of kernels/cpu/quant.hpp
// act_quant on device pointers, bit-exact with it (max, power-of-two scale and the e4m3 rounding
// are order-independent).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda {

// x: [n] f32, n % block == 0 (rows of a matrix are simply consecutive blocks when the row length is
// a multiple of block). codes: [n] e4m3; scales: [n / block]:
// scale = 2^ceil(log2(max(amax, 1e-4) / 448)), codes = e4m3(clamp(x / scale, -448, 448)).
void act_quant(const float* x, int64_t n, int64_t block, uint8_t* codes, float* scales, cudaStream_t stream);

// The rows of x [m, k] (row stride ldx, k % 128 == 0) quantised per 128-block as act_quant (the same
// codes and scales, bit for bit) into codes [m_pad, k] and scales [k / 128, m_pad]: token-major, as
// cuBLASLt's VEC128 scale mode and the tensor-core GEMV read them. Rows m..m_pad get zero codes and
// scale 1.
void act_quant_rows(const float* x, int64_t ldx, int64_t m, int64_t m_pad, int64_t k, uint8_t* codes, float* scales,
                    cudaStream_t stream);

}  // namespace dsa::cuda
