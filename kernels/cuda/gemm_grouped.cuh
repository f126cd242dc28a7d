// The FP8 GEMM of quantised rows on the tensor cores (gemm_grouped.cu): matmul_fp8_grouped's kernel
// (gemm.hpp), and matmul_fp8's for more rows than the GEMVs take where cuBLASLt does not run. 64 x
// 128 outputs per block of eight warps; 128-byte K steps copied 4 stages ahead (cp.async); mma.sync
// m16n8k32 on the e4m3 codes (sm_89 and later) or m16n8k16 on the codes as fp16 (sm_80); fp32 sums
// scaled per 128-block as the reference does. Internal to kernels/cuda.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda::detail {

// matmul_fp8's contract: the rows quantised (act_quant_rows) into scratch from the stream's memory
// pool, then the kernel. False, launching nothing, where it does not fit: before sm_80, ldw not a
// multiple of 16, w not 16-byte aligned.
bool gemm_fp8_codes(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                    const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy, cudaStream_t stream);

}  // namespace dsa::cuda::detail
