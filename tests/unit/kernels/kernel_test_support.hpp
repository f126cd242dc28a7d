// Shared helpers of the kernel tests: the golden vectors of tests/fixtures/kernels (written by
// tests/golden/make_kernel_golden.py from reference_model.py) and bf16-aware comparisons.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "kernels/dtypes.hpp"

namespace dsa::test {

class Golden {
 public:
  static const Golden& get() {
    static const Golden g;
    return g;
  }
  template <class T>
  std::vector<T> array(const std::string& c, const std::string& name) const {
    const auto& a = index_.at(c).at("arrays").at(name);
    size_t count = 1;
    for (auto d : a.at("shape")) count *= d.get<size_t>();
    std::vector<T> out(count);
    const size_t off = a.at("offset").get<size_t>();
    REQUIRE(off + count * sizeof(T) <= blob_.size());
    std::memcpy(out.data(), blob_.data() + off, count * sizeof(T));
    return out;
  }
  std::vector<int64_t> shape(const std::string& c, const std::string& name) const {
    return index_.at(c).at("arrays").at(name).at("shape").get<std::vector<int64_t>>();
  }
  double param(const std::string& c, const std::string& name) const {
    return index_.at(c).at("params").at(name).get<double>();
  }

 private:
  Golden() {
    const std::string dir = std::string(DSA_FIXTURES_DIR) + "/kernels/";
    std::ifstream js(dir + "golden.json");
    REQUIRE_MESSAGE(js.good(), "missing " << dir << "golden.json");
    index_ = nlohmann::json::parse(js);
    std::ifstream bin(dir + "golden.bin", std::ios::binary);
    blob_.assign(std::istreambuf_iterator<char>(bin), std::istreambuf_iterator<char>());
  }
  nlohmann::json index_;
  std::vector<char> blob_;
};

// Distance in bf16 steps between two bf16 values (0 = identical; NaN never matches).
inline int64_t bf16_ulps(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return 1 << 30;
  auto ordered = [](float f) {
    const int32_t h = int32_t(float_to_bf16(f));
    return h & 0x8000 ? -(h & 0x7fff) : h;
  };
  const int64_t d = int64_t(ordered(a)) - int64_t(ordered(b));
  return d < 0 ? -d : d;
}

// Largest bf16 step distance over two arrays; prints "OK / NOT OK maxdiff" for the record.
inline int64_t max_bf16_ulps(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  int64_t worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, bf16_ulps(got[i], want[i]));
  MESSAGE(std::string(what) << ": max bf16 ulps " << worst);
  return worst;
}

// Largest |got - want| / max(|want|, floor).
inline double max_rel_err(const std::vector<float>& got, const std::vector<float>& want, double floor) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])) / std::max(std::fabs(double(want[i])), floor));
  return worst;
}

inline std::vector<float> random_bf16(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = round_bf16(d(rng));
  return v;
}

inline std::vector<uint8_t> random_e4m3(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> d(0.0f, 100.0f);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = float_to_fp8_e4m3(std::fmax(-448.0f, std::fmin(448.0f, d(rng))));
  return v;
}

}  // namespace dsa::test
