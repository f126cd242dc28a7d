// The current device's properties the launchers choose kernels and grids by. Internal to
// kernels/cuda.
#pragma once
#include <cuda_runtime_api.h>

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

}  // namespace dsa::cuda::dev
