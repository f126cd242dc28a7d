#include "kernels/cpu/rows.hpp"

#include <algorithm>

#include "kernels/dtypes.hpp"

namespace dsa::cpu {

void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0) {
      std::fill(out + i * dim, out + (i + 1) * dim, 0.0f);
      continue;
    }
    const uint16_t* row = table + static_cast<int64_t>(ids[i]) * dim;
    for (int64_t j = 0; j < dim; ++j) out[i * dim + j] = bf16_to_float(row[j]);
  }
}

void gather_rows(const float* src, int64_t dim, const int32_t* rows, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = src + static_cast<int64_t>(rows[i]) * dim;
    std::copy(row, row + dim, dst + i * dim);
  }
}

void round_bf16(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = dsa::round_bf16(x[i]);
}

}  // namespace dsa::cpu
