// CUDA rotary embedding: the contract of kernels/cpu/rope.hpp apply_rope on device pointers (the
// YaRN frequencies come from cpu::yarn_inv_freq, copied to the device once at load time).
// cos/sin are computed in fp64 and rounded to fp32, so a result can differ from the CPU's (which
// uses the C library's fp32 cosf/sinf) by one bf16 ulp where those round differently.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cpu/rope.hpp"

namespace dsa::cuda {

using cpu::RopeLayout;

// x: device, the rope vector of (token t, head h) at x + t*tok_stride + h*head_stride, `dim`
// elements (even), rotated in place. pos: [n_tok] int64 device; inv_freq: [dim / 2] f32 device.
// angle = float(pos) * inv_freq[j] in fp32; products and sums in fp32 without contraction; bf16 out.
void apply_rope(float* x, int64_t n_tok, int64_t n_heads, int64_t tok_stride, int64_t head_stride,
                int64_t dim, const int64_t* pos, const float* inv_freq, RopeLayout layout,
                cudaStream_t stream);

}  // namespace dsa::cuda
