// matmul_fp8 through cuBLASLt's block-scaled FP8 GEMM on Hopper: the rows quantised per 128-block
// into scratch (act_quant, bit-exact with the CPU's), one cuBLASLt product with the checkpoint's
// 128 x 128 weight scales and the rows' 1 x 128 scales, its bf16 result widened into y. Internal to
// kernels/cuda (gemm.cu dispatches to it); the contract is matmul_fp8's (gemm.hpp).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda::detail {

// Whether the product fits cuBLASLt's block-scaled mode on this device: sm_90, whole k blocks in
// multiples of 4 (ld_scale == k / 128: not a k slice), 16-byte aligned weights and scales, ldw a
// multiple of 16 and n of 8.
bool gemm_cublaslt_fp8_fits(int64_t m, int64_t k, const uint8_t* w, int64_t ldw, const float* scale_inv,
                            int64_t ld_scale, int64_t n, int64_t ldy);

// matmul_fp8 through cuBLASLt; false (nothing launched) when it does not fit or cuBLASLt has no
// kernel for it. Scratch (codes, scales, the bf16 product, a 32 MiB workspace) comes from the
// stream's memory pool.
bool gemm_cublaslt_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                       const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy, cudaStream_t stream);

}  // namespace dsa::cuda::detail
