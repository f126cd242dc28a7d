// Products of 1 to 16 rows on the tensor cores, the weights read once for all the rows, straight
// into the products' fragments: matmul_fp8 on FP8 tensor cores (mma.sync m16n8k32 e4m3, sm_89 and
// later), matmul_bf16 on bf16 ones (m16n8k16, sm_80 and later). Internal to kernels/cuda (gemm.cu
// dispatches to them; matmul_fp8_gemv_mma and matmul_bf16_gemv_mma in gemm.hpp are their public
// forms).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda::detail {

// Whether the current device has FP8 tensor cores (compute capability 8.9 or later) and runs an image of the kernel
// built for them (not the sm_80 / compute_80 one of a multi-target build).
bool gemv_fp8_mma_available();

// matmul_fp8's contract for m <= 16; false, launching nothing, where it does not fit (more rows,
// ldw not a multiple of 16, weights not 16-byte aligned, no FP8 tensor cores). The quantised rows
// are scratch from the stream's memory pool.
bool gemv_fp8_mma(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                  const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy, cudaStream_t stream);

// matmul_bf16_batched's contract for m <= 16; false, launching nothing, where it does not fit (more
// rows, k not a positive multiple of 32, ldw or bsw not of 8, W not 16-byte aligned, before sm_80,
// more than 65535 products). The rows in bf16 are scratch from the stream's memory pool.
bool gemv_bf16_mma(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                   int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch, bool round_out,
                   cudaStream_t stream);

}  // namespace dsa::cuda::detail
