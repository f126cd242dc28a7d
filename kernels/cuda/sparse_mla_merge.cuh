// The pieces of split-KV sparse attention (flash decoding) the two split kernels share
// (sparse_mla_split.cu on CUDA cores, sparse_mla_mma.cu on tensor cores): a head's online softmax
// step, and the merge of the splits. Internal to kernels/cuda.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device.cuh"

namespace dsa::cuda::dev {

// One head's step of an online softmax over a chunk of 32 scores, a lane per score (called by the
// 32 lanes of one warp; scores past the chunk's records are -inf, and at least one is finite):
// returns the lane's weight e^(s - m), m the new running max. Lane 0 updates the head's running
// max and sum and stores the factor rescaling the earlier weights (0 on the first chunk).
__device__ __forceinline__ float online_softmax_step(float s, float* run_max, float* run_sum, float* rescale) {
  const float m_old = *run_max, m_new = fmaxf(m_old, warp_max(s));
  const float e = expf(s - m_new);  // 0 for the lanes past the records
  const float sum = warp_sum(e);
  __syncwarp();  // every lane has read the running max before lane 0 replaces it
  if ((threadIdx.x & 31) == 0) {
    const float f = expf(m_old - m_new);  // 0 on the first chunk (m_old = -inf)
    *rescale = f;
    *run_sum = fmaf(*run_sum, f, sum);
    *run_max = m_new;
  }
  return e;
}

}  // namespace dsa::cuda::dev

namespace dsa::cuda::detail {

// part_o [n_q][n_splits][n_heads][kv_lora]: each split's unnormalised weighted latents; part_ml
// [n_q][n_splits][n_heads][2]: its running max and sum (-inf and 0 for a split past the selection).
// o_lat [n_q][n_heads][kv_lora] = bf16(sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s), M the largest
// m_s; zeros for a query that selects nothing. n_q <= 65535.
void sparse_mla_merge(const float* part_o, const float* part_ml, int64_t n_heads, int64_t kv_lora, int64_t n_splits,
                      int64_t n_q, float* o_lat, cudaStream_t stream);

}  // namespace dsa::cuda::detail
