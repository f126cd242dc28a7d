// Two-array dot-product bandwidth probe (bandwidth_probe.hpp).
#include "cli/bench/bandwidth_probe.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "kernels/cpu/parallel.hpp"

namespace dsa::cli {

namespace {

// Sixteen independent accumulators so the compiler vectorises without reassociating.
float dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

}  // namespace

double measure_read_bandwidth(int64_t array_bytes, int passes) {
  const int64_t n = array_bytes / int64_t(sizeof(float));
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  const int64_t block = 1 << 16;
  const int64_t n_blocks = (n + block - 1) / block;
  cpu::parallel_for(n_blocks, [&](int64_t lo, int64_t hi) {  // first touch on the threads that read
    for (int64_t i = lo * block; i < std::min(n, hi * block); ++i) a[size_t(i)] = 1.0f, b[size_t(i)] = 0.5f;
  });
  std::vector<float> partial(static_cast<size_t>(n_blocks));
  double best = 1e30;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu::parallel_for(n_blocks, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        const int64_t i0 = k * block;
        partial[size_t(k)] = dot(a.data() + i0, b.data() + i0, std::min(block, n - i0));
      }
    });
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  double total = 0;
  for (float v : partial) total += v;
  if (total != 0.5 * double(n)) std::fprintf(stderr, "bench: bandwidth probe checksum off (%g)\n", total);
  return 2.0 * double(n) * sizeof(float) / best;
}

}  // namespace dsa::cli
