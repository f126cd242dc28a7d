// matmul_fp8 through cuBLASLt's block-scaled FP8 GEMM on Hopper: the rows quantised per 128-block
// into scratch (act_quant, bit-exact with the CPU's), one cuBLASLt product with the checkpoint's
// 128 x 128 weight scales and the rows' 1 x 128 scales, its bf16 result widened into y. And
// matmul_bf16(_batched) through cuBLASLt's bf16 GEMM on sm_80+: the rows copied as bf16 into
// scratch, the f32 products written in place. Internal to kernels/cuda (gemm.cu dispatches to
// them); the contracts are matmul_fp8's and matmul_bf16_batched's (gemm.hpp).
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

// Whether the bf16 product fits cuBLASLt here: sm_80+, k, ldw and bsw multiples of 8 (16-byte
// rows), and weights of their own per product when there are several.
bool gemm_cublaslt_bf16_fits(int64_t m, int64_t k, int64_t ldw, int64_t bsw, int64_t batch);

// matmul_bf16_batched through cuBLASLt; false (nothing launched) when it does not fit or cuBLASLt
// has no kernel for it. Scratch (the rows as bf16, a 32 MiB workspace) comes from the stream's pool.
bool gemm_cublaslt_bf16(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                        int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch, bool round_out_bf16,
                        cudaStream_t stream);

}  // namespace dsa::cuda::detail
