// The bf16 tensor-core product-accumulate the GEMM and the indexer share (mma.sync m16n8k16, fp32
// accumulation, sm_80 and later), and whether the current device has it.
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

// The current device runs mma_bf16 (compute capability 8.0 or later).
inline bool mma_available() { return compute_capability() >= 80; }

}  // namespace dsa::cuda::dev
