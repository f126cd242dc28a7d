// Device helpers shared by the CUDA kernels: the number formats of kernels/dtypes.hpp with the same
// rounding (so results can match the CPU reference bit for bit), the ue8m0 scale of act_quant, and
// warp / block reductions. Internal to kernels/cuda.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace dsa::cuda::dev {

constexpr float kFp8Max = 448.0f;
constexpr int kQuantBlock = 128;

__device__ __forceinline__ float bf16_to_float(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

__device__ __forceinline__ uint16_t float_to_bf16(float f) {
  uint32_t b = __float_as_uint(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return uint16_t((b >> 16) | 0x40);  // quiet NaN
  b += 0x7fffu + ((b >> 16) & 1u);                                          // nearest even
  return uint16_t(b >> 16);
}

__device__ __forceinline__ float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// e4m3fn -> f32, exact (through the hardware fp8 -> fp16 conversion where there is one).
__device__ __forceinline__ float fp8_to_float(uint8_t v) {
  const __half_raw h = __nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(v), __NV_E4M3);
  return __half2float(__half(h));
}

// Two e4m3fn codes (the low byte first) -> f32 pair, exact.
__device__ __forceinline__ float2 fp8x2_to_float2(uint16_t v) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(v), __NV_E4M3);
  return __half22float2(__half2(h));
}

// f32 -> e4m3fn, nearest even; |f| >= 480 or NaN gives NaN (callers clamp to +-448 first), as
// float_to_fp8_e4m3 in kernels/dtypes.hpp.
__device__ __forceinline__ uint8_t float_to_fp8(float f) {
  uint32_t b = __float_as_uint(f);
  const uint8_t sign = uint8_t((b >> 24) & 0x80u);
  b &= 0x7fffffffu;
  uint8_t r;
  if (b >= 0x43f00000u) {
    r = 0x7f;
  } else if (b < (121u << 23)) {
    const uint32_t magic = 141u << 23;  // 2^14 puts the 2^-9 subnormal grid at the mantissa lsb
    const float v = __fadd_rn(__uint_as_float(b), __uint_as_float(magic));
    r = uint8_t(__float_as_uint(v) - magic);
  } else {
    const uint32_t mant_odd = (b >> 20) & 1u;
    b += (uint32_t(7 - 127) << 23) + 0x7ffffu + mant_odd;
    r = uint8_t(b >> 20);
  }
  return r | sign;
}

// act_quant's ue8m0 scale: 2^ceil(log2(max(amax, 1e-4) / 448)), the ratio rounded to fp32 first.
__device__ __forceinline__ float ue8m0_scale(float amax) {
  const float ratio = __fdiv_rn(fmaxf(amax, 1e-4f), kFp8Max);
  const uint32_t b = __float_as_uint(ratio);  // normal and positive: >= 2^-22
  if ((b & 0x7fffffu) == 0) return ratio;
  return __uint_as_float((b & 0x7f800000u) + 0x800000u);
}

__device__ __forceinline__ uint8_t quantise(float x, float scale) {
  return float_to_fp8(fminf(fmaxf(__fdiv_rn(x, scale), -kFp8Max), kFp8Max));
}

// Asks for the 128-byte line at p to be brought into L2 (a hint: nothing waits for it, nothing
// faults); p must lie inside an allocation.
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// Hints the lines of [p, p + bytes) into L2, the block's threads sharing them out.
__device__ __forceinline__ void prefetch_l2_bytes(const uint8_t* p, size_t bytes) {
  for (size_t at = size_t(threadIdx.x) * 128; at < bytes; at += size_t(blockDim.x) * 128) prefetch_l2(p + at);
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum / max (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 32 values and is reused after a barrier.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < n_warps ? scratch[lane] : T(0);
  return warp_sum(r);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < n_warps ? scratch[lane] : -INFINITY;
  return warp_max(r);
}

}  // namespace dsa::cuda::dev
