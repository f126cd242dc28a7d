// Tensor-core GEMMs for calls of more rows than the GEMVs take (prefill chunks): the contracts of
// gemm.hpp, launched by gemm.cu. 64 x 64 outputs per block of four warps, each warp 32 x 32 by
// mma.sync m16n8k16 on bf16 operands with fp32 accumulation (sm_80 and later).
//   bf16 weights: x is rounded to bf16 on its way into shared memory (exact for the engine's
//     activations, which are bf16 values); K steps of 64.
//   fp8 weights: x quantised per row and 128-block (act_quant's ue8m0 scale), as the tiled kernel
//     and the reference do; the codes of x and W are exact in bf16; each 128-block's products are
//     summed by the tensor cores, then scaled by both block scales into the fp32 total.
// Operands are read element by element (any alignment, any stride); no asynchronous copies yet.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda::detail {

// y[z] = x[z] . w[z]^T for z < batch (operands bsx / bsw / bsy apart), m up to 65535 * 64 rows.
void gemm_mma_bf16(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                   int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch, bool round_out_bf16,
                   cudaStream_t stream);

// k % 128 == 0; outputs rounded to bf16.
void gemm_mma_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                  const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy, cudaStream_t stream);

}  // namespace dsa::cuda::detail
