// `dsagent bench`'s sampling line (sampling.hpp).
#include "cli/bench/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "cli/bench/repeat.hpp"
#include "engine/runtime/sampler.hpp"

namespace dsa::cli {

namespace {

double seconds_per_draw(const SamplerOptions& options, std::span<const float> logits) {
  Sampler sampler(options);
  return seconds_per_call([&] { sampler.sample(logits); }, [] {});
}

// The nucleus's size counted directly: every id's weight, sorted, summed until 95%.
int64_t nucleus_size(std::span<const float> logits, double top_p) {
  float top = -INFINITY;
  for (float v : logits)
    if (!std::isnan(v)) top = std::max(top, v);
  std::vector<double> w;
  double total = 0;
  for (float v : logits) total += w.emplace_back(std::isnan(v) ? 0.0 : std::exp(double(v) - double(top)));
  std::sort(w.begin(), w.end(), std::greater<>());
  double mass = 0;
  int64_t n = 0;
  while (n < int64_t(w.size()) && mass < top_p * total) mass += w[size_t(n++)];
  return n;
}

}  // namespace

SamplingTimes time_sampling(std::span<const float> logits) {
  return {.greedy_seconds = seconds_per_draw({}, logits),
          .nucleus_seconds = seconds_per_draw({.temperature = 1.0, .top_p = 0.95, .seed = 1}, logits),
          .nucleus_ids = nucleus_size(logits, 0.95)};
}

}  // namespace dsa::cli
