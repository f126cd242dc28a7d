// matmul_fp8 for 1 to 16 rows on the FP8 tensor cores (mma.sync m16n8k32 e4m3, sm_89 and later):
// the weights read once for all the rows, straight into the products' fragments. Internal to
// kernels/cuda (gemm.cu dispatches to it; matmul_fp8_gemv_mma in gemm.hpp is its public form).
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

}  // namespace dsa::cuda::detail
