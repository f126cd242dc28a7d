// The current device's properties the launchers choose kernels and grids by, and the pointer
// alignment their vector loads need. Internal to kernels/cuda.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/check.hpp"

namespace dsa::cuda::dev {

inline int device_attribute(cudaDeviceAttr attr) {
  int device = 0, value = 0;
  DSA_CUDA_CHECK(cudaGetDevice(&device));
  DSA_CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

// major * 10 + minor: 80 for an A100, 89 for an L40S, 90 for an H100 or H200.
inline int compute_capability() {
  return 10 * device_attribute(cudaDevAttrComputeCapabilityMajor) + device_attribute(cudaDevAttrComputeCapabilityMinor);
}

// Whether p may be read with 16-byte vector loads.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace dsa::cuda::dev
