// Helpers of the GPU kernel tests: device detection (a missing GPU fails every case with one clear
// line instead of crashing), device buffers, random bf16-valued data and the comparisons against
// the CPU reference: bit-exact, or within a stated tolerance with the worst element reported.
#pragma once
#include <cuda_runtime_api.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/dtypes.hpp"

namespace dsa::test {

// Empty when a CUDA device is usable, else why not.
inline const std::string& gpu_problem() {
  static const std::string problem = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return std::string("no usable CUDA device: ") + cudaGetErrorString(err);
    if (count == 0) return std::string("no CUDA device found");
    const cudaError_t set = cudaSetDevice(0);
    if (set != cudaSuccess) return std::string("cannot use CUDA device 0: ") + cudaGetErrorString(set);
    return std::string();
  }();
  return problem;
}

#define DSA_REQUIRE_GPU() REQUIRE_MESSAGE(::dsa::test::gpu_problem().empty(), ::dsa::test::gpu_problem())

#define DSA_CUDA_OK(call) REQUIRE_MESSAGE((call) == cudaSuccess, #call, ": ", cudaGetErrorString(cudaGetLastError()))

// A device copy of a host vector; freed on scope exit.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    DSA_CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    DSA_CUDA_OK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(p_); }
  T* get() const { return p_; }
  // Waits for the device and copies the buffer back.
  std::vector<T> to_host() const {
    DSA_CUDA_OK(cudaDeviceSynchronize());
    std::vector<T> host(n_);
    DSA_CUDA_OK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

// n values rounded to bf16, normal(0, sigma).
inline std::vector<float> random_bf16(size_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = round_bf16(dist(rng));
  return v;
}

inline std::vector<uint16_t> to_bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = float_to_bf16(v[i]);
  return b;
}

// Whether got is within one bf16 ulp of want (the ulp of want's binade; zero has no slack).
inline bool within_bf16_ulp(float got, float want) {
  if (got == want) return true;
  if (want == 0.0f || !std::isfinite(want)) return false;
  const double ulp = std::ldexp(1.0, std::ilogb(want) - 7);
  return std::fabs(double(got) - double(want)) <= ulp;
}

// Bit-exact comparison (floats by their bits); reports the count and the first mismatch.
template <class T>
void check_exact(const std::vector<T>& got, const std::vector<T>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool same = std::memcmp(&got[i], &want[i], sizeof(T)) == 0;
    if (!same && bad++ == 0) first = i;
  }
  INFO(what, ": ", bad, " of ", got.size(), " differ; first at ", first, ": got ", double(got[first]), " want ",
       double(want[first]));
  CHECK(bad == 0);
}

// Element-wise |got - want| <= rel * |want| + abs_frac * rms(want), and the normalised squared
// error sum (got - want)^2 / sum want^2 <= nmse. Reports the worst element.
inline void check_close(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs_frac,
                        double nmse, const char* what) {
  REQUIRE(got.size() == want.size());
  double ss = 0.0, se = 0.0;
  for (float w : want) ss += double(w) * double(w);
  const double rms = std::sqrt(ss / double(std::max<size_t>(want.size(), 1)));
  size_t bad = 0, worst = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - double(want[i]));
    se += d * d;
    const double excess = d - (rel * std::fabs(double(want[i])) + abs_frac * rms);
    if (excess > 0 || std::isnan(got[i]) != std::isnan(want[i])) ++bad;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  const double err = ss > 0 ? se / ss : se;
  INFO(what, ": ", bad, " of ", got.size(), " outside tolerance; worst at ", worst, ": got ", got[worst], " want ",
       want[worst], "; normalised squared error ", err);
  CHECK(bad == 0);
  CHECK(err <= nmse);
}

}  // namespace dsa::test
