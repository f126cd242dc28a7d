// Data-parallel loops for the heavy CPU kernels. OpenMP when the build has it, otherwise a small
// persistent pool of std::threads. Not a task system: one flat loop at a time; a parallel_for
// called from inside another runs serially on the calling thread.
#pragma once
#include <cstdint>
#include <type_traits>

namespace dsa::cpu {

// The most threads a parallel_for may be given: thread creation fails far below absurd counts.
inline constexpr int kMaxThreads = 1024;

// Number of threads a parallel_for uses (defaults to the hardware concurrency, or DSA_THREADS when
// it is a number from 1 to kMaxThreads).
int num_threads();
// Sets the thread count for later loops; n <= 0 restores the default.
void set_num_threads(int n);

namespace detail {
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
void run_parallel(int64_t n, int64_t grain, RangeFn fn, void* ctx);
}  // namespace detail

// Calls f(begin, end) on disjoint, contiguous ranges that cover [0, n), each at least `grain` long
// (except a shorter last one), on up to num_threads() threads; returns when all are done.
// Which thread runs which range is unspecified, so f must not depend on it.
template <class F>
void parallel_for(int64_t n, F&& f, int64_t grain = 1) {
  using Fn = std::remove_reference_t<F>;
  detail::run_parallel(
      n, grain,
      [](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// Calls f(i) for every i < n: one item per task on the threads when there are at least as many
// items as threads (each item's own parallel loops then run on its thread), else in order on the
// calling thread (so each item's loops use every thread). For independent items whose results do
// not depend on how their loops are threaded.
template <class F>
void for_each_item(int64_t n, F&& f) {
  if (n >= num_threads()) {
    parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) f(i);
    });
  } else {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
}

}  // namespace dsa::cpu
