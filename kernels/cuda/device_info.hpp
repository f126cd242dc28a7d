// The current device's properties the launchers choose kernels and grids by, and the pointer
// alignment their vector loads need. Internal to kernels/cuda.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <new>

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

// Lets `kernel` launch with `bytes` of dynamic shared memory. The limit only ever rises: a CUDA
// graph recorded earlier may hold launches of the kernel that need more, and must not find the
// limit lowered under them when it is replayed.
template <class Kernel>
void allow_dynamic_smem(Kernel kernel, size_t bytes) {
  const void* entry = reinterpret_cast<const void*>(kernel);
  cudaFuncAttributes attr{};
  DSA_CUDA_CHECK(cudaFuncGetAttributes(&attr, entry));
  if (size_t(attr.maxDynamicSharedSizeBytes) >= bytes) return;
  DSA_CUDA_CHECK(cudaFuncSetAttribute(entry, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// `bytes` of scratch for one launcher call, from the stream's memory pool (while a CUDA graph is
// being captured, an allocation of the graph), given back with cudaFreeAsync on the same stream.
// The pool short of memory is the one failure a launcher reports by exception, std::bad_alloc,
// with the stream usable: the engine answers it with a smaller call (BackendModel).
template <class T>
T* pool_scratch(size_t bytes, cudaStream_t stream) {
  void* p = nullptr;
  DSA_CUDA_CHECK_OR_BAD_ALLOC(cudaMallocAsync(&p, bytes, stream));
  return static_cast<T*>(p);
}

// Whether p may be read with 16-byte vector loads.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace dsa::cuda::dev
