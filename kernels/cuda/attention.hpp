// CUDA sparse MLA decode in the absorbed (MQA) form over the indexer's selection: the contract and
// latent cache records of kernels/cpu/attention.hpp (bf16 and the 656-byte fp8 record), on device
// pointers. Scores and softmax are fp32 with an exact two-pass softmax (fp64 sum), as the CPU.
// One block per group of 4 heads: pass 1 scores every selected record (a warp per record), the
// softmax runs in shared memory, pass 2 accumulates the weighted latents (a thread per column).
// Sums are in a different order than the CPU's, so outputs match to fp32 rounding before the final
// bf16 rounding.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/attention.hpp"

namespace dsa::cuda {

using cpu::LatentCacheView;
using cpu::LatentFormat;

// Stores n_tok tokens' c_kv: [n_tok, kv_lora] (kv_a_layernorm output, bf16 values) and k_pe:
// [n_tok, rope_dim] (after RoPE) at the cache slots pos: [n_tok] int64 (device): byte for byte what
// cpu::latent_write stores token by token (bf16: c_kv fp8-round-tripped; fp8: act_quant codes and
// scales). kv_lora % 128 == 0; the arena 4-byte aligned.
void latent_write(uint8_t* arena, const int32_t* pages, LatentFormat fmt, int64_t kv_lora, int64_t rope_dim,
                  int64_t n_tok, const int64_t* pos, const float* c_kv, const float* k_pe, cudaStream_t stream);

// q_abs: [n_heads, kv_lora] f32 (device); q_pe: [n_heads, rope_dim] f32 (device); view: device arena
// and page table (kv_lora % 128 == 0 for fp8); sel: [n_sel] int32 cached positions (device), any
// order; o_lat: [n_heads, kv_lora] f32 (device):
//   score[h, j] = (q_abs[h] . c_kv[sel[j]] + q_pe[h] . k_pe[sel[j]]) * softmax_scale
//   o_lat[h] = bf16(sum_j softmax_j(score[h]) * c_kv[sel[j]]);   n_sel == 0 gives zeros.
// n_sel is bounded by shared memory (4 scores and one slot per selected key, 20 bytes, next to the
// block's 4 queries): at most sparse_mla_decode_max_sel(kv_lora, rope_dim), 11059 for 512 + 64 on
// an H100.
void sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                       const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat, cudaStream_t stream);

// n_q queries at once (a prefill chunk, or a decode batch): query i's q_abs / o_lat [n_heads,
// kv_lora] and q_pe [n_heads, rope_dim] follow query i-1's, its page table is view.pages + i *
// pages_stride (0: one sequence), its selection sel + i * sel_stride with n_sel[i] keys (device
// int32, each <= max_sel <= sparse_mla_decode_max_sel).
void sparse_mla_decode_batched(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                               int64_t pages_stride, int64_t n_q, const int32_t* sel, int64_t sel_stride,
                               const int32_t* n_sel, int64_t max_sel, float softmax_scale, float* o_lat,
                               cudaStream_t stream);

// The largest n_sel sparse_mla_decode takes on the current device for these record widths.
int64_t sparse_mla_decode_max_sel(int64_t kv_lora, int64_t rope_dim);

// The same contracts in the split-KV (flash-decoding) form (sparse_mla_split.cu): each query's
// selection cut into splits so that the blocks fill the GPU at batch 1, an online softmax in fp32
// per split, the splits merged per head. Any n_sel (no shared-memory bound); kv_lora <= 512 and a
// chunk of 32 records in shared memory (sparse_mla_decode_split_supported). Its sums are in another
// order than the two-pass kernel's, so the two match to fp32 rounding before the bf16 rounding.
// CudaBackend runs it past the two-pass kernel's key limit only, until the GPU tests have checked it
// against the CPU and timed it next to the two-pass kernel.
bool sparse_mla_decode_split_supported(int64_t kv_lora, int64_t rope_dim);
void sparse_mla_decode_split(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                             const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat,
                             cudaStream_t stream);
void sparse_mla_decode_split_batched(const float* q_abs, const float* q_pe, int64_t n_heads,
                                     const LatentCacheView& view, int64_t pages_stride, int64_t n_q,
                                     const int32_t* sel, int64_t sel_stride, const int32_t* n_sel, int64_t max_sel,
                                     float softmax_scale, float* o_lat, cudaStream_t stream);

// The same contracts on the tensor cores (sm_80+, sparse_mla_mma.cu): a block per query, 16 / 32 /
// 64 of its heads and a split of its selection; the selected records decoded 32 at a time into
// shared memory as bf16 (exact), the heads' scores as mma.sync tiles (q_abs and q_pe are bf16
// values: exact products, fp32 sums), an online softmax in fp32, the weights as two bf16 parts (a
// value and its remainder: 16 bits) times the latents on the tensor cores; a query's splits (as
// many as fill the GPU, 64 keys each at least) merged per head. Any n_sel. Needs kv_lora % 64 == 0,
// kv_lora <= 512 and (kv_lora + rope) % 16 == 0 (sparse_mla_decode_mma_supported, which also checks
// the device).
bool sparse_mla_decode_mma_supported(int64_t kv_lora, int64_t rope_dim);
void sparse_mla_decode_mma(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                           const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat, cudaStream_t stream);
void sparse_mla_decode_mma_batched(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                                   int64_t pages_stride, int64_t n_q, const int32_t* sel, int64_t sel_stride,
                                   const int32_t* n_sel, int64_t max_sel, float softmax_scale, float* o_lat,
                                   cudaStream_t stream);

}  // namespace dsa::cuda
