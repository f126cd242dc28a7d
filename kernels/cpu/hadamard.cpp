// Fast Walsh-Hadamard transform (see hadamard.hpp).
#include "kernels/cpu/hadamard.hpp"

#include <vector>

#include "kernels/cpu/check.hpp"
#include "kernels/dtypes.hpp"

namespace dsa::cpu {

void hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y) {
  DSA_KERNEL_REQUIRE(n > 0 && (n & (n - 1)) == 0, "hadamard needs a power-of-two size");
  thread_local std::vector<double> buf;
  buf.resize(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) buf[i] = x[r * n + i];
    // Butterflies in natural order: after all stages buf = x . H_n with H[i][j] = (-1)^popcount(i&j).
    for (int64_t h = 1; h < n; h *= 2)
      for (int64_t i = 0; i < n; i += 2 * h)
        for (int64_t j = i; j < i + h; ++j) {
          const double a = buf[j], b = buf[j + h];
          buf[j] = a + b;
          buf[j + h] = a - b;
        }
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = round_bf16(float(buf[i] * scale));
  }
}

}  // namespace dsa::cpu
