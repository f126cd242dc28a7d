// The tensor-core product-accumulates the kernels share (mma.sync, fp32 accumulation): bf16 and
// fp16 m16n8k16 (sm_80 and later), e4m3 m16n8k32 (sm_89 and later); whether the current device has
// the bf16 one; e4m3 codes as fp16 for devices without FP8 products.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_info.hpp"

namespace dsa::cuda::dev {

// c += a . b for a 16 x 16 row-major tile a and a 16 x 8 column-major tile b, bf16 pairs in 32-bit
// registers (the lower index in the lower half). Fragments, with g = lane / 4 and t = lane % 4:
//   a[0]: row g, columns 2t, 2t + 1;  a[1]: row g + 8;  a[2]: row g, columns + 8;  a[3]: both + 8;
//   b[0]: rows (k) 2t, 2t + 1 of column g;  b[1]: rows + 8;
//   c[0], c[1]: row g, columns 2t, 2t + 1;  c[2], c[3]: row g + 8.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // launchers check mma_available()
#endif
}

// mma_bf16 on fp16 pairs.
__device__ __forceinline__ void mma_f16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // launchers check mma_available()
#endif
}

// c += a . b on FP8 tensor cores: a 16 x 32 e4m3 tile (row-major) times a 32 x 8 one (column-major),
// fp32 accumulation (sm_89 and later). Fragments, g = lane / 4, t = lane % 4, four codes per
// register (the lowest k in the lowest byte): a[0] row g, k 4t..4t+3; a[1] row g + 8; a[2] row g,
// k + 16; a[3] both; b[0] k 4t..4t+3 of column g, b[1] k + 16; c as mma_bf16's.
__device__ __forceinline__ void mma_e4m3(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // callers check the device and the image it runs
#endif
}

// Four e4m3 codes (the lowest first) as two fp16 pairs, each value times 2^-8, exactly: the code's
// sign, exponent and mantissa bits moved into fp16's (the exponent biases differ by 8; subnormal
// codes land on fp16 subnormals the same way). lo holds codes 0 and 1, hi codes 2 and 3. Codes
// 0x7f / 0xff (NaN) become 1.875 / -1.875. Three integer operations per pair.
__device__ __forceinline__ void e4m3x4_to_f16x2(uint32_t v, uint32_t& lo, uint32_t& hi) {
  const uint32_t a = __byte_perm(v, 0, 0x1404), b = __byte_perm(v, 0, 0x3424);  // codes into bits 8..15, 24..31
  lo = (a & 0x80008000u) | ((a & 0x7f007f00u) >> 1);
  hi = (b & 0x80008000u) | ((b & 0x7f007f00u) >> 1);
}

// The current device runs mma_bf16 (compute capability 8.0 or later).
inline bool mma_available() { return compute_capability() >= 80; }

}  // namespace dsa::cuda::dev
