// CUDA matrix products y = x . W^T for checkpoint linears: the contracts of kernels/cpu/gemm.hpp on
// device pointers, launched on `stream`.
//   m <= 16 (decode, and decode batches): a memory-bound GEMV, one warp per output row, 16-byte
//     weight loads each serving up to 8 rows (two launches for 9-16 rows: the weights read twice,
//     far less work than a tiled GEMM's 64-row tiles); the fp8 form quantises x (act_quant, per
//     128) into shared memory once per block. Where the output rows are too few blocks to fill the
//     GPU (fp8: kv_a, q_a, the indexer's wk; bf16: the router, the indexer's weights_proj) both
//     split k over blocks too and add the parts in the unsplit order afterwards: the same bits
//     either way. A row's result does not depend on the rows beside it.
//   m > 16, or shapes the vector path cannot take (unaligned pointers or strides): FP8 through
//     cuBLASLt on Hopper, else on sm_80 and later the rows quantised and multiplied on the tensor
//     cores with asynchronous copies (gemm_grouped.cuh: 16-byte aligned weights); bf16 past 16 rows
//     through cuBLASLt on sm_80+; other bf16, and FP8 weights the grouped kernel does not take, on
//     the sm_80+ tensor-core GEMM (gemm_mma.cuh: mma.sync on bf16 operands, fp32 accumulation,
//     64 x 64 outputs per block); before sm_80 a plain shared-memory tiled GEMM, which takes any
//     shape.
// Accumulation is fp32 (the fp8 form per 128-block, then scaled, as the reference's fp8_gemm), so
// results match the fp64-accumulating CPU scalar reference to fp32 rounding, not bit for bit; but
// FP8 tensor cores (sm_89+) add within a 128-block in about 14 bits (DeepSeek-V3's report, 3.3.2),
// so there a block's sum is good to about 2^-14 of its size.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/gemm.hpp"  // Fp8Matrix

namespace dsa::cuda {

// x: [m, k] f32 (row stride ldx); w: [n, k] bf16 bits (row stride ldw); y: [m, n] (row stride ldy).
// y = x . w^T; round_out_bf16 rounds every output to bf16, otherwise outputs stay fp32. Past 8 rows
// on sm_80+ the products run on the tensor cores with x rounded to bf16, so x must hold bf16 values
// for every row count to give the same rows (the engine's do: norm outputs, the absorbed q).
void matmul_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw,
                 int64_t n, float* y, int64_t ldy, bool round_out_bf16, cudaStream_t stream);

// batch products y_b = x_b . w_b^T, b < batch, each as matmul_bf16, their operands bsx, bsw and bsy
// elements apart (x_b = x + b * bsx, ...): the absorbed MLA projections of every head in one launch.
void matmul_bf16_batched(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                         int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                         bool round_out_bf16, cudaStream_t stream);

// The reference FP8 linear (model-spec 3.1): per row of x and 128-block of k, act_quant (ue8m0 scale
// sa, e4m3 codes); y[i, j] = bf16(sum_kb dot(xq[i, kb], wq[j, kb]) * sa[i, kb] * scale_inv[j/128, kb]).
// x: [m, k] f32 (row stride ldx), k % 128 == 0; w: [n, k] e4m3 (row stride ldw); scale_inv:
// [ceil(n/128), ld_scale] f32; y: [m, n] (row stride ldy), bf16-rounded. Shards as in the CPU header.
void matmul_fp8(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                cudaStream_t stream);

// matmul_fp8 through cuBLASLt's block-scaled FP8 GEMM on Hopper: the rows quantised per 128-block
// (act_quant) into scratch from the stream's memory pool, the weight's 128 x 128 scales and the
// rows' 1 x 128 scales as cuBLASLt's BLK128x128 and VEC128 modes, the bf16 product widened into y.
// Returns false, launching nothing, where it does not fit: not sm_90, a k slice (ld_scale !=
// k / 128), k / 128 not a multiple of 4, ldw not a multiple of 16, n not of 8, weights or scales
// not 16-byte aligned, or no cuBLASLt kernel for the problem. matmul_fp8 takes it for more than
// 16 rows where it fits.
bool matmul_fp8_cublaslt(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                         const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                         cudaStream_t stream);

// matmul_bf16_batched through cuBLASLt's bf16 GEMM (sm_80+): the rows as bf16 into scratch from the
// stream's memory pool, f32 products written in place (then rounded when asked), fp32 accumulation.
// Returns false, launching nothing, where it does not fit: before sm_80, k, ldw or bsw not a
// multiple of 8, several products sharing one weight (bsw == 0), or no cuBLASLt kernel for the
// problem. matmul_bf16 and _batched take it for more than 16 rows where it fits.
bool matmul_bf16_cublaslt(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                          int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                          bool round_out_bf16, cudaStream_t stream);

// matmul_bf16_batched for 1 to 16 rows on the tensor cores (sm_80+): the rows rounded to bf16 into
// scratch, then per warp 8 output columns of one product for all the rows, W's elements loaded
// straight into mma.sync m16n8k16 fragments (read once, whatever the row count), fp32 sums. False,
// launching nothing, where it does not fit (more rows, k not a positive multiple of 32, ldw or bsw not of
// 8, W not 16-byte aligned, before sm_80). matmul_bf16 and _batched take it for 9 to 16 rows.
bool matmul_bf16_gemv_mma(const float* x, int64_t ldx, int64_t bsx, int64_t m, int64_t k, const uint16_t* w,
                          int64_t ldw, int64_t bsw, int64_t n, float* y, int64_t ldy, int64_t bsy, int64_t batch,
                          bool round_out_bf16, cudaStream_t stream);

// matmul_fp8 for 1 to 16 rows on the FP8 tensor cores (sm_89+): the rows quantised into scratch,
// then per warp 8 output columns for all the rows, W's codes loaded straight into mma.sync
// m16n8k32 e4m3 fragments (read once, whatever the row count), each 128-block's sum scaled as the
// reference does. False, launching nothing, where it does not fit (more rows, ldw not a multiple
// of 16, W not 16-byte aligned, no FP8 tensor cores). matmul_fp8 takes it for 9 to 16 rows, which
// the GEMV would read the weights twice for.
bool matmul_fp8_gemv_mma(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                         const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                         cudaStream_t stream);

// cpu::matmul_fp8_grouped on the device: the routed experts of a prefill chunk, every group of a
// projection in one launch (gemm_grouped.cuh: 64 rows of one group by 128 columns per block, the
// codes copied 4 K steps ahead, FP8 tensor cores from sm_89, fp16 ones on sm_80, a plain kernel
// before). codes [*, k] (16-byte aligned) and scales [*, k / 128], row_map, first (n_groups + 1
// entries) and the experts' table in device memory, the experts' weights 16-byte aligned (resident
// tensors are); first_host: first's entries on the host (they size the grid). Each row equals
// matmul_fp8's for that row to fp32 summation order. k % 128 == 0, n <= 65535 * 128.
void matmul_fp8_grouped(const uint8_t* codes, const float* scales, int64_t k, const int32_t* row_map,
                        const int32_t* first, const int32_t* first_host, int64_t n_groups,
                        const cpu::Fp8Matrix* experts, int64_t n, float* y, int64_t ldy, cudaStream_t stream);

// cpu::matmul_fp8_routed on the device (idx and the experts' table in device memory, the weights
// resident): one GEMV launch for all n_pairs routed pairs, each reading its expert from idx, so an
// MoE layer of a decode step needs no host round trip. Each row equals matmul_fp8's for that row
// alone (m = 1), bit for bit. k % 128 == 0; x 16-byte aligned, ldx % 4 == 0; the experts' weights
// 16-byte aligned (resident tensors are); n_pairs <= 65535.
void matmul_fp8_routed(const float* x, int64_t ldx, int64_t x_div, const int32_t* idx, int64_t n_pairs, int rank,
                       int n_ranks, const cpu::Fp8Matrix* experts, int64_t k, int64_t n, float* y, int64_t ldy,
                       cudaStream_t stream);

}  // namespace dsa::cuda
