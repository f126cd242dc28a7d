// Multiply-add peak probes (see peak.hpp): 12 independent accumulators per thread, enough to cover
// the FMA latency times the issue width of current x86 cores.
#include "kernels/cpu/peak.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/simd.hpp"

namespace dsa::cpu {
namespace {

constexpr int kChains = 12;

// Runs `iters` rounds of kChains FMAs; the result keeps the work observable.
float fma_rounds(int64_t iters) {
  simd::vf acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = simd::set1(1.0f + float(j) * 1e-7f);
  const simd::vf a = simd::set1(0.9999999f), b = simd::set1(1e-8f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = simd::fma(acc[j], a, b);
  simd::vf sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = simd::add(sum, acc[j]);
  return simd::hsum(sum);
}

#if defined(__AVX512BF16__)
// Runs `iters` rounds of kChains bf16 pair dot products (2 x kBf16Width multiply-adds each).
float dot_rounds(int64_t iters) {
  simd::vf acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = simd::set1(float(j) * 1e-7f);
  const simd::vbh a = _mm512_cvtne2ps_pbh(simd::set1(0.5f), simd::set1(0.25f));
  const simd::vbh b = _mm512_cvtne2ps_pbh(simd::set1(1e-8f), simd::set1(2e-8f));
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = simd::dot_bf16(a, b, acc[j]);
  simd::vf sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = simd::add(sum, acc[j]);
  return simd::hsum(sum);
}
#endif

// FLOP/s of rounds(iters) on every thread, flops_per_round multiply-add FLOPs per round and thread:
// the best of `passes` runs of about `seconds`.
template <class Rounds>
double measure_peak(Rounds&& rounds, double flops_per_round, double seconds, int passes) {
  using Clock = std::chrono::steady_clock;
  // Size the rounds on one thread first (about a tenth of the pass).
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = Clock::now();
    volatile float sink = rounds(iters);
    (void)sink;
    if (std::chrono::duration<double>(Clock::now() - t0).count() > seconds / 10 || iters > (int64_t(1) << 34)) break;
    iters *= 2;
  }
  iters *= 10;
  const int threads = num_threads();
  std::vector<float> sink(static_cast<size_t>(threads));
  double best = 0;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = Clock::now();
    parallel_for(threads, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) sink[size_t(t)] = rounds(iters);
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, flops_per_round * double(iters) * double(threads) / s);
  }
  volatile float keep = sink[0];
  (void)keep;
  return best;
}

}  // namespace

double measure_fma_peak(double seconds, int passes) {
  return measure_peak(fma_rounds, 2.0 * double(kChains) * double(simd::kWidth), seconds, passes);
}

double measure_bf16_dot_peak(double seconds, int passes) {
#if defined(__AVX512BF16__)
  return measure_peak(dot_rounds, 2.0 * double(kChains) * double(simd::kBf16Width), seconds, passes);
#else
  (void)seconds;
  (void)passes;
  return 0;
#endif
}

bool fp8_products_use_bf16_dot() { return simd::kBf16Dot; }

}  // namespace dsa::cpu
