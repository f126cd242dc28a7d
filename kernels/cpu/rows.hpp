// Row moves of the forward pass: the embedding lookup, gathers of rows by index, bf16 rounding in
// place. Plain loops; the CUDA forms (kernels/cuda/rows.hpp) are bit-exact with them.
#pragma once
#include <cstdint>

namespace dsa::cpu {

// table: [vocab, dim] bf16 bits; ids: [n] rows of the table (each in range, checked by the caller),
// or -1 for a row of zeros (a token whose row another rank holds). out: [n, dim] f32,
// out[i] = table[ids[i]].
void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out);

// src: rows of dim floats; rows: [n] indices into src. dst: [n, dim], dst[i] = src[rows[i]].
void gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst);

// x[i] = bf16(x[i]) for i < n (round to nearest even).
void round_bf16(float* x, int64_t n);

}  // namespace dsa::cpu
