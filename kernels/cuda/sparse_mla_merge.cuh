// The pieces of split-KV sparse attention (flash decoding) the two split kernels share
// (sparse_mla_split.cu on CUDA cores, sparse_mla_mma.cu on tensor cores): the choice of splits, a
// block's share of the work, a head's online softmax step, and the merge of the splits. Internal
// to kernels/cuda.
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/device.cuh"
#include "kernels/cuda/latent_records.cuh"

namespace dsa::cuda::dev {

// Every query's selection (at most max_sel keys) cut into n_splits splits of split_len keys, a
// whole number of chunks of `chunk` keys and at least min_chunks of them (unless the selection is
// shorter): as many as bring `blocks` blocks per split to about target_blocks.
struct Splits {
  int64_t split_len, n_splits;
};
inline Splits choose_splits(int64_t blocks, int64_t target_blocks, int64_t max_sel, int64_t chunk, int64_t min_chunks) {
  const int64_t chunks = (max_sel + chunk - 1) / chunk;
  const int64_t want =
      std::clamp<int64_t>((target_blocks + blocks - 1) / blocks, 1, std::max<int64_t>(1, chunks / min_chunks));
  const int64_t split_len = (chunks + want - 1) / want * chunk;
  return Splits{split_len, (max_sel + split_len - 1) / split_len};
}

// A split kernel's block: blockIdx x the head group of `heads` heads, y the split, z the query.
// The query's operands (q_abs, q_pe after the previous query's; its page table pages_stride entries
// on; its selection sel_stride on) are offset to it; its keys are min(n_sel_of[z], max_sel), or
// max_sel, and the block's split holds [j0, j1) of them.
struct SplitShare {
  int h0, hn;
  int64_t query, split, n_splits;
  int j0, j1;
};
__device__ __forceinline__ SplitShare split_share(int heads, int n_heads, int64_t pages_stride, int64_t sel_stride,
                                                  const int32_t* n_sel_of, int max_sel, int split_len,
                                                  const float*& q_abs, const float*& q_pe, Records& rec,
                                                  const int32_t*& sel) {
  SplitShare b;
  b.h0 = int(blockIdx.x) * heads;
  b.hn = min(heads, n_heads - b.h0);
  b.query = blockIdx.z;
  b.split = blockIdx.y;
  b.n_splits = gridDim.y;
  q_abs += b.query * n_heads * rec.kv_lora;
  q_pe += b.query * n_heads * rec.rope;
  rec.pages += b.query * pages_stride;
  sel += b.query * sel_stride;
  const int n_sel = n_sel_of ? min(n_sel_of[b.query], max_sel) : max_sel;
  b.j0 = int(b.split) * split_len;
  b.j1 = min(n_sel, b.j0 + split_len);
  return b;
}

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
