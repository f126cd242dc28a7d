// CUDA top-k selection for the indexer (model-spec 5.5): a batch of rows, one block per row, by a
// 4-pass radix select on an order-preserving 32-bit key (passes 2-4 on the keys of the selected top
// byte, gathered into shared memory when they fit), then an ordered pass that writes the winners
// in ascending position: each warp counts the winners of its segment of the row, then ranks its
// entries by ballots, with one block barrier in all. Same selection as kernels/cpu/topk.hpp topk_positions: the k
// largest, ties at the threshold broken towards the lower position, NaN below -inf, +0 above -0.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda {

// scores: [n_rows, ld_scores] f32 (device). Row r has n_valid[r] candidates (positions 0..n_valid[r]);
// n_valid is a device int32 array (n_valid[r] <= n), or nullptr for n candidates in every row.
// out: [n_rows, ld_out] int32 (device), ld_out >= k: row r gets the positions of its
// k_r = min(k, n_r) largest scores in ascending order in out[r, 0..k_r), and -1 in out[r, k_r..k).
// A few rows of at least 16,384 positions (at most a quarter as many rows as SMs, n <=
// topk_split_max_n()) run topk_positions_split; the others topk_positions_rows.
void topk_positions(const float* scores, int64_t ld_scores, int64_t n_rows, int64_t n, const int32_t* n_valid,
                    int64_t k, int32_t* out, int64_t ld_out, cudaStream_t stream);

// The selection with one block per row (above).
void topk_positions_rows(const float* scores, int64_t ld_scores, int64_t n_rows, int64_t n, const int32_t* n_valid,
                         int64_t k, int32_t* out, int64_t ld_out, cudaStream_t stream);

// The same selection with each row split over blocks of 4,096 positions, so that a few long rows
// (a decode step's indexer rows) use the whole GPU: a histogram of the keys' top 12 bits per row,
// the entries of the bin holding the k-th largest gathered (up to 16,384 per row; past that the
// row is re-read), the radix select finished on them, and the winners written per block from the
// counts of the blocks before. Four launches and a memset, no host synchronisation; scratch from
// the stream's memory pool. Same arguments and results as topk_positions; n <= topk_split_max_n()
// and n_valid[r] <= n.
void topk_positions_split(const float* scores, int64_t ld_scores, int64_t n_rows, int64_t n, const int32_t* n_valid,
                          int64_t k, int32_t* out, int64_t ld_out, cudaStream_t stream);
int64_t topk_split_max_n();  // 1,048,576

}  // namespace dsa::cuda
