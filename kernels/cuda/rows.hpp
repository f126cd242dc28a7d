// CUDA row moves: the contracts of kernels/cpu/rows.hpp on device pointers, launched on `stream`,
// bit-exact with them (pure copies and the same bf16 rounding).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace dsa::cuda {

// table: [vocab, dim] bf16 bits; ids: [n] int32 rows of the table (device, each in range, checked by
// the caller) or -1 for a row of zeros. out: [n, dim] f32, out[i] = table[ids[i]].
void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out, cudaStream_t stream);

// src: rows of dim floats; rows: [n] int32 indices into src (device). dst: [n, dim], dst[i] =
// src[rows[i]]; dst must not overlap the rows it reads.
void gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst, cudaStream_t stream);

// x[i] = bf16(x[i]) for i < n (round to nearest even, NaN stays a quiet NaN).
void round_bf16(float* x, int64_t n, cudaStream_t stream);

}  // namespace dsa::cuda
