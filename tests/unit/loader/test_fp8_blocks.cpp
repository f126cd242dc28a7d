// FP8 block-scaled weights: pair checks (partial last blocks included), dequantisation against a
// decode written out here from the e4m3 definition, and the power-of-two scale report.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/loader/fp8_blocks.hpp"
#include "tests/unit/loader/st_builder.hpp"

using namespace dsa;
using namespace dsa::test;

namespace {

// e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0 is subnormal; S.1111.111 is NaN.
double e4m3_value(uint8_t code) {
  const int e = (code >> 3) & 15, m = code & 7;
  if (e == 15 && m == 7) return NAN;
  const double mag = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7);
  return (code & 0x80) ? -mag : mag;
}

struct Fp8Pair {
  TempDir dir{"fp8"};
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  Result<Checkpoint> ckpt = make_error("not opened");
};

// W [n, k] with codes cycling through every finite value, scales 2^-(1 + block index).
std::unique_ptr<Fp8Pair> make_pair(int64_t n, int64_t k, std::vector<int64_t> scale_shape, std::string scale_dtype) {
  auto p = std::make_unique<Fp8Pair>();
  p->codes.resize(size_t(n * k));
  for (size_t i = 0; i < p->codes.size(); ++i) {
    uint8_t c = uint8_t((i * 7 + i / 200) & 0xff);
    if ((c & 0x7f) == 0x7f) c ^= 1;  // skip NaN
    p->codes[i] = c;
  }
  int64_t ns = 1;
  for (auto d : scale_shape) ns *= d;
  for (int64_t i = 0; i < ns; ++i) p->scales.push_back(std::ldexp(1.0f, -int(1 + i)));
  std::string scale_bytes = raw_bytes(p->scales);
  if (scale_dtype != "F32") scale_bytes.resize(scale_bytes.size() / 2);
  // One byte of padding first, so the F32 scales sit at an odd offset (the format allows that).
  const auto path = write_file(p->dir / "w.safetensors",
                               st_file({{"pad", "U8", {1}, std::string(1, '\0')},
                                        {"w.weight", "F8_E4M3", {n, k}, raw_bytes(p->codes)},
                                        {"w.weight_scale_inv", scale_dtype, scale_shape, scale_bytes}}));
  p->ckpt = Checkpoint::open(path);
  REQUIRE_MESSAGE(p->ckpt.ok(), error_of(p->ckpt));
  return p;
}

}  // namespace

TEST_CASE("check_fp8_pair accepts partial last blocks and names both tensors when wrong") {
  {
    auto p = make_pair(576, 200, {5, 2}, "F32");  // kv_a_proj_with_mqa-like: 576 rows -> 5 scale rows
    CHECK(check_fp8_pair(*p->ckpt->find("w.weight"), *p->ckpt->find("w.weight_scale_inv")).ok());
  }
  {
    auto p = make_pair(576, 200, {4, 2}, "F32");
    auto r = check_fp8_pair(*p->ckpt->find("w.weight"), *p->ckpt->find("w.weight_scale_inv"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("'w.weight_scale_inv'") != std::string::npos);
    CHECK(r.error().message.find("'w.weight'") != std::string::npos);
    CHECK(r.error().message.find("F32 [5, 2]") != std::string::npos);
    CHECK(r.error().message.find("[4, 2]") != std::string::npos);
  }
  {
    auto p = make_pair(128, 128, {1, 1}, "BF16");
    auto r = check_fp8_pair(*p->ckpt->find("w.weight"), *p->ckpt->find("w.weight_scale_inv"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("BF16 [1, 1]") != std::string::npos);
  }
  {
    auto p = make_pair(128, 128, {1, 1}, "F32");
    auto r = check_fp8_pair(*p->ckpt->find("w.weight_scale_inv"), *p->ckpt->find("w.weight"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("F8_E4M3") != std::string::npos);
    // Smaller blocks need more scales.
    CHECK_FALSE(check_fp8_pair(*p->ckpt->find("w.weight"), *p->ckpt->find("w.weight_scale_inv"), 64).ok());
  }
}

TEST_CASE("dequant_fp8_rows multiplies each code by its block's scale") {
  const int64_t n = 300, k = 260;  // 3 x 3 blocks, partial in both directions
  auto p = make_pair(n, k, {3, 3}, "F32");
  const TensorInfo& w = *p->ckpt->find("w.weight");
  const TensorInfo& s = *p->ckpt->find("w.weight_scale_inv");
  REQUIRE(check_fp8_pair(w, s).ok());
  std::vector<float> all(size_t(n * k));
  dequant_fp8_rows(w, s, 0, n, all.data());
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const double want = e4m3_value(p->codes[size_t(i * k + j)]) * p->scales[size_t((i / 128) * 3 + j / 128)];
      mismatches += double(all[size_t(i * k + j)]) == want ? 0 : 1;
    }
  }
  CHECK(mismatches == 0);
  // A slice of rows across a block boundary equals the same rows of the whole.
  std::vector<float> part(size_t(20 * k));
  dequant_fp8_rows(w, s, 120, 20, part.data());
  CHECK(std::equal(part.begin(), part.end(), all.begin() + 120 * k));
  // read_as_f32 gives the unscaled codes.
  auto raw = read_as_f32(w);
  REQUIRE(raw.ok());
  CHECK(double((*raw)[5]) == e4m3_value(p->codes[5]));
}

TEST_CASE("count_non_pow2_scales counts what is not an exact positive power of two") {
  TempDir dir("fp8");
  const std::vector<float> scales = {1.0f, 0.5f, std::ldexp(1.0f, -140), 1024.0f, 3.0f,
                                     0.0f, -2.0f, INFINITY,               NAN,     0.75f};
  const auto path = write_file(dir / "s.safetensors", st_file({{"s", "F32", {2, 5}, raw_bytes(scales)}}));
  auto ckpt = Checkpoint::open(path);
  REQUIRE(ckpt.ok());
  CHECK(count_non_pow2_scales(*ckpt->find("s")) == 6);
  CHECK(count_unusable_scales(*ckpt->find("s")) == 4);  // 0, -2, inf, NaN
}
