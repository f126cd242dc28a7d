// FP8 block-scaled weight helpers (see fp8_blocks.hpp for the layout).
#include "engine/loader/fp8_blocks.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "kernels/dtypes.hpp"

namespace dsa {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

float load_f32(const std::byte* p, int64_t i) {
  float v;
  std::memcpy(&v, p + 4 * i, 4);  // safetensors data carries no alignment guarantee
  return v;
}

}  // namespace

Result<void> check_fp8_pair(const TensorInfo& w, const TensorInfo& scale_inv, int64_t block) {
  DSA_CHECK(block > 0);
  if (w.dtype != DType::F8_E4M3 || w.shape.size() != 2) {
    return make_error(fmt::format("tensor '{}': expected a F8_E4M3 matrix [n, k], got {} {}", w.name,
                                  dtype_name(w.dtype), w.shape_str()));
  }
  const std::vector<int64_t> expected = {ceil_div(w.shape[0], block), ceil_div(w.shape[1], block)};
  if (scale_inv.dtype != DType::F32 || scale_inv.shape != expected) {
    return make_error(fmt::format("tensor '{}': expected F32 [{}, {}] (block {} scales of '{}' {}), got {} {}",
                                  scale_inv.name, expected[0], expected[1], block, w.name, w.shape_str(),
                                  dtype_name(scale_inv.dtype), scale_inv.shape_str()));
  }
  return {};
}

void dequant_fp8_rows(const TensorInfo& w, const TensorInfo& scale_inv, int64_t row0, int64_t nrows, float* out) {
  DSA_CHECK(check_fp8_pair(w, scale_inv).ok(), "call check_fp8_pair first");
  DSA_CHECK(row0 >= 0 && nrows >= 0 && row0 + nrows <= w.shape[0]);
  const int64_t k = w.shape[1];
  const int64_t scale_cols = scale_inv.shape[1];
  const auto* codes = reinterpret_cast<const uint8_t*>(w.data);
  for (int64_t r = row0; r < row0 + nrows; ++r) {
    const uint8_t* src = codes + r * k;
    float* dst = out + (r - row0) * k;
    const int64_t scale_row = (r / fp8_block) * scale_cols;
    for (int64_t c0 = 0; c0 < k; c0 += fp8_block) {
      const float s = load_f32(scale_inv.data, scale_row + c0 / fp8_block);
      const int64_t c1 = std::min(k, c0 + fp8_block);
      for (int64_t c = c0; c < c1; ++c) dst[c] = fp8_e4m3_to_float(src[c]) * s;
    }
  }
}

int64_t count_non_pow2_scales(const TensorInfo& scale_inv) {
  DSA_CHECK(scale_inv.dtype == DType::F32);
  int64_t n = 0;
  for (int64_t i = 0; i < scale_inv.numel(); ++i) {
    const float s = load_f32(scale_inv.data, i);
    int exp = 0;
    const bool pow2 = std::isfinite(s) && s > 0 && std::frexp(s, &exp) == 0.5f;
    n += pow2 ? 0 : 1;
  }
  return n;
}

int64_t count_unusable_scales(const TensorInfo& scale_inv) {
  DSA_CHECK(scale_inv.dtype == DType::F32);
  int64_t n = 0;
  for (int64_t i = 0; i < scale_inv.numel(); ++i) {
    const float s = load_f32(scale_inv.data, i);
    n += std::isfinite(s) && s > 0 ? 0 : 1;
  }
  return n;
}

}  // namespace dsa
