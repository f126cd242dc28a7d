// Error handling of the CUDA kernels. Both kinds stop the program: a failed CUDA call (the
// expression, file:line and the driver's message) and a violated launcher contract (a bug in the
// caller; shapes are validated where the model is loaded). The one exception is memory the device
// is short of (DSA_CUDA_CHECK_OR_BAD_ALLOC), which throws std::bad_alloc.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <new>

#define DSA_CUDA_CHECK(call)                                                                     \
  do {                                                                                           \
    const cudaError_t dsa_cuda_err_ = (call);                                                    \
    if (dsa_cuda_err_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s:%d: CUDA error %s: %s (in %s)\n", __FILE__, __LINE__,             \
                   cudaGetErrorName(dsa_cuda_err_), cudaGetErrorString(dsa_cuda_err_), #call);   \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

// As DSA_CUDA_CHECK, except that the device short of memory (cudaErrorMemoryAllocation, which is not
// sticky: cleared, and the context goes on) throws std::bad_alloc, which the engine answers with a
// smaller call (BackendModel): scratch from the stream's pool, backend allocations, and a CUDA
// graph's own memory at instantiation and launch.
#define DSA_CUDA_CHECK_OR_BAD_ALLOC(call)                \
  do {                                                   \
    const cudaError_t dsa_cuda_status_ = (call);         \
    if (dsa_cuda_status_ == cudaErrorMemoryAllocation) { \
      (void)cudaGetLastError();                          \
      throw std::bad_alloc();                            \
    }                                                    \
    DSA_CUDA_CHECK(dsa_cuda_status_);                    \
  } while (0)

// After a kernel launch: reports a bad configuration at the launch site (asynchronous faults
// surface at the next synchronising call).
#define DSA_CUDA_CHECK_LAUNCH() DSA_CUDA_CHECK(cudaGetLastError())

#define DSA_CUDA_REQUIRE(cond, hint)                                                             \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      std::fprintf(stderr, "%s:%d: CUDA kernel contract violated: %s (%s)\n", __FILE__, __LINE__, \
                   #cond, hint);                                                                 \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)
