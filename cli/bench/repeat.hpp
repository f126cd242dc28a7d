// The time of one call of an operation, as bench's kernel and sampling lines take it.
#pragma once
#include <chrono>

namespace dsa::cli {

// Seconds per call of op: one warm-up call, then calls until 0.1 s have passed (at most 100).
// finish() runs after every call, inside the timing (a backend's synchronisation; nothing for host
// work).
template <class Op, class Finish>
double seconds_per_call(Op&& op, Finish&& finish) {
  using Clock = std::chrono::steady_clock;
  op();
  finish();
  const auto t0 = Clock::now();
  int calls = 0;
  double elapsed = 0;
  do {
    op();
    ++calls;
    finish();
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (elapsed < 0.1 && calls < 100);
  return elapsed / calls;
}

}  // namespace dsa::cli
