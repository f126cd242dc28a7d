// Asynchronous copies from global into shared memory (cp.async, sm_80 and later): a kernel issues
// a stage's copies, commits them as a group, and waits for all but the newest groups before it
// reads the stage, so the loads of later stages overlap the products of this one. Internal to
// kernels/cuda.
#pragma once
#include <cstdint>

namespace dsa::cuda::dev {

// 16 bytes from src (16-byte aligned) to dst (shared, 16-byte aligned); zeros instead where !valid
// (src is not read then, but must still be a valid address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 16 : 0));
#else
  __trap();  // launchers check mma_available()
#endif
}

// 4 bytes, as cp_async16.
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(src), "r"(valid ? 4 : 0));
#else
  __trap();
#endif
}

// Closes the group of the copies this thread issued since the last commit (possibly none).
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most `pending` of this thread's committed groups are still in flight; a barrier
// after it makes every thread's copies of the finished groups visible to the block.
template <int pending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
#endif
}

}  // namespace dsa::cuda::dev
