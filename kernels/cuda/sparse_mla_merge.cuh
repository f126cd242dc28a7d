// The merge of split-KV sparse attention (flash decoding), shared by the two split kernels
// (sparse_mla_split.cu on CUDA cores, sparse_mla_mma.cu on tensor cores). Internal to kernels/cuda.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda::detail {

// part_o [n_q][n_splits][n_heads][kv_lora]: each split's unnormalised weighted latents; part_ml
// [n_q][n_splits][n_heads][2]: its running max and sum (-inf and 0 for a split past the selection).
// o_lat [n_q][n_heads][kv_lora] = bf16(sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s), M the largest
// m_s; zeros for a query that selects nothing. n_q <= 65535.
void sparse_mla_merge(const float* part_o, const float* part_ml, int64_t n_heads, int64_t kv_lora, int64_t n_splits,
                      int64_t n_q, float* o_lat, cudaStream_t stream);

}  // namespace dsa::cuda::detail
