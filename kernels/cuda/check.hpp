// Error handling of the CUDA kernels. Both kinds stop the program: a failed CUDA call (the
// expression, file:line and the driver's message) and a violated launcher contract (a bug in the
// caller; shapes are validated where the model is loaded). The one exception is a launcher's
// scratch memory (dev::pool_scratch), which throws std::bad_alloc when the pool is short.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>

#define DSA_CUDA_CHECK(call)                                                                     \
  do {                                                                                           \
    const cudaError_t dsa_cuda_err_ = (call);                                                    \
    if (dsa_cuda_err_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s:%d: CUDA error %s: %s (in %s)\n", __FILE__, __LINE__,             \
                   cudaGetErrorName(dsa_cuda_err_), cudaGetErrorString(dsa_cuda_err_), #call);   \
      std::abort();                                                                              \
    }                                                                                            \
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
