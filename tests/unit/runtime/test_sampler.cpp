// Sampler: greedy ties, seeded reproducibility, and draw frequencies against an independent
// softmax (with temperature, top-k and top-p applied by hand).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "engine/runtime/sampler.hpp"

using namespace dsa;

namespace {

std::vector<double> softmax(const std::vector<float>& logits, double t) {
  std::vector<double> p(logits.size());
  double mx = -1e300, sum = 0;
  for (float v : logits) mx = std::max(mx, double(v));
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp((logits[i] - mx) / t);
  for (double& v : p) v /= sum;
  return p;
}

std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<double> f(logits.size(), 0.0);
  int out_of_range = 0;
  for (int i = 0; i < draws; ++i) {
    const int32_t id = s.sample(logits);
    if (id < 0 || size_t(id) >= logits.size()) {
      ++out_of_range;
      continue;
    }
    f[size_t(id)] += 1.0;
  }
  CHECK(out_of_range == 0);
  for (double& v : f) v /= draws;
  return f;
}

// Each frequency within 5 standard deviations of its expected probability (and exact zeros).
void check_matches(const std::vector<double>& freq, const std::vector<double>& expect, int draws) {
  for (size_t i = 0; i < freq.size(); ++i) {
    CAPTURE(i);
    CAPTURE(freq[i]);
    CAPTURE(expect[i]);
    if (expect[i] == 0.0) {
      CHECK(freq[i] == 0.0);
    } else {
      const double sigma = std::sqrt(expect[i] * (1 - expect[i]) / draws);
      CHECK(std::abs(freq[i] - expect[i]) <= 5 * sigma + 1e-12);
    }
  }
}

const std::vector<float> kLogits = {1.0f, 2.5f, -0.5f, 2.0f, 0.0f, 1.5f, -3.0f, 0.7f};

}  // namespace

TEST_CASE("greedy picks the argmax, ties to the lower id, NaN never wins") {
  Sampler s({});
  CHECK(s.sample(std::vector<float>{1, 3, 3, 2}) == 1);
  CHECK(s.sample(std::vector<float>{-1, -1, -1}) == 0);
  CHECK(s.sample(std::vector<float>{std::nanf(""), 0.5f, 0.25f}) == 1);
  const float ninf = -std::numeric_limits<float>::infinity();
  CHECK(s.sample(std::vector<float>{ninf, ninf, -100.0f}) == 2);
  CHECK(s.sample(kLogits) == 1);
  // top_k = 1 is greedy whatever the temperature.
  Sampler k1({.temperature = 5.0, .top_k = 1, .seed = 3});
  for (int i = 0; i < 50; ++i) CHECK(k1.sample(kLogits) == 1);
}

TEST_CASE("a seed reproduces a run; another seed gives another run") {
  const SamplerOptions opt{.temperature = 1.0, .top_p = 0.95, .top_k = 0, .seed = 42};
  Sampler a(opt), b(opt);
  SamplerOptions other = opt;
  other.seed = 43;
  Sampler c(other);
  std::vector<int32_t> ra, rb, rc;
  for (int i = 0; i < 500; ++i) {
    ra.push_back(a.sample(kLogits));
    rb.push_back(b.sample(kLogits));
    rc.push_back(c.sample(kLogits));
  }
  CHECK(ra == rb);
  CHECK(ra != rc);
}

TEST_CASE("frequencies follow softmax(logits / T)") {
  const int draws = 200000;
  for (double t : {1.0, 0.5, 2.0}) {
    CAPTURE(t);
    Sampler s({.temperature = t, .seed = 7});
    check_matches(frequencies(s, kLogits, draws), softmax(kLogits, t), draws);
  }
}

TEST_CASE("masked ids (-inf) are never drawn") {
  std::vector<float> logits = kLogits;
  const float ninf = -std::numeric_limits<float>::infinity();
  logits[1] = ninf;
  logits[3] = ninf;
  const int draws = 100000;
  Sampler s({.temperature = 1.0, .seed = 11});
  std::vector<double> expect = softmax(logits, 1.0);
  check_matches(frequencies(s, logits, draws), expect, draws);
}

TEST_CASE("top-k keeps only the k most likely ids, renormalised") {
  const int draws = 200000;
  const int k = 3;
  Sampler s({.temperature = 1.0, .top_k = k, .seed = 5});
  // Independent top-k: the k largest logits by value.
  std::vector<size_t> idx(kLogits.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [](size_t a, size_t b) { return kLogits[a] > kLogits[b]; });
  std::vector<double> full = softmax(kLogits, 1.0), expect(kLogits.size(), 0.0);
  double mass = 0;
  for (int i = 0; i < k; ++i) mass += full[idx[size_t(i)]];
  for (int i = 0; i < k; ++i) expect[idx[size_t(i)]] = full[idx[size_t(i)]] / mass;
  check_matches(frequencies(s, kLogits, draws), expect, draws);
}

TEST_CASE("top-p keeps the smallest most-likely set reaching p") {
  // probabilities 0.5, 0.3, 0.15, 0.05 (as logs), given out of order.
  const std::vector<float> logits = {float(std::log(0.15)), float(std::log(0.5)), float(std::log(0.05)),
                                     float(std::log(0.3))};
  const int draws = 100000;
  SUBCASE("p = 0.75 keeps the top two") {
    Sampler s({.temperature = 1.0, .top_p = 0.75, .seed = 9});
    check_matches(frequencies(s, logits, draws), {0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8}, draws);
  }
  SUBCASE("p = 0.85 keeps the top three") {
    Sampler s({.temperature = 1.0, .top_p = 0.85, .seed = 9});
    check_matches(frequencies(s, logits, draws), {0.15 / 0.95, 0.5 / 0.95, 0.0, 0.3 / 0.95}, draws);
  }
  SUBCASE("a tiny p keeps only the most likely") {
    Sampler s({.temperature = 1.0, .top_p = 0.01, .seed = 9});
    check_matches(frequencies(s, logits, 1000), {0.0, 1.0, 0.0, 0.0}, 1000);
  }
  SUBCASE("top-k then top-p") {
    // top-k 3 leaves 0.5, 0.3, 0.15 (mass 0.95); p = 0.8 of that is 0.76: the top two.
    Sampler s({.temperature = 1.0, .top_p = 0.8, .top_k = 3, .seed = 9});
    check_matches(frequencies(s, logits, draws), {0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8}, draws);
  }
}

TEST_CASE("step_logprobs: log-softmax of the raw logits, the chosen id's and the n most likely") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {0.0f, std::log(2.0f), -inf, std::nanf(""), std::log(2.0f)};
  // softmax over {1, 2, 0, 0, 2}: 1/5, 2/5, 0, 0, 2/5
  const StepLogprobs lp = step_logprobs(logits, 0, 3);
  CHECK(lp.chosen == doctest::Approx(std::log(0.2)));
  REQUIRE(lp.top.size() == 3);
  CHECK(lp.top[0].id == 1);  // equal logits: the lower id first
  CHECK(lp.top[1].id == 4);
  CHECK(lp.top[2].id == 0);
  CHECK(lp.top[0].logprob == doctest::Approx(std::log(0.4)));
  CHECK(lp.top[1].logprob == doctest::Approx(std::log(0.4)));
  CHECK(lp.top[2].logprob == doctest::Approx(std::log(0.2)));
  CHECK(step_logprobs(logits, 3, 0).chosen == -inf);  // NaN reads as -inf
  CHECK(step_logprobs(logits, 2, 0).top.empty());
  CHECK(step_logprobs(logits, 2, 99).top.size() == logits.size());
  // Temperature and truncation do not enter: the distribution is the model's.
  const std::vector<float> shifted = {100.0f, 100.0f + std::log(2.0f)};
  CHECK(step_logprobs(shifted, 1, 1).chosen == doctest::Approx(std::log(2.0 / 3.0)));
}

namespace {

// The nucleus draw by the definition: every id sorted most likely first, weights exp((v - max) / T)
// summed in id order, the shortest sorted prefix reaching top_p of that, and the inverse-CDF walk
// over it with the sampler's uniform (the top 53 bits of the seeded mt19937_64).
struct ReferenceNucleus {
  std::vector<int32_t> ids;  // the nucleus, most likely first
  std::vector<double> weights;
  double mass = 0;

  ReferenceNucleus(const std::vector<float>& logits, double t, double top_p) {
    const auto clean = [](float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; };
    ids.resize(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      const float la = clean(logits[size_t(a)]), lb = clean(logits[size_t(b)]);
      return la > lb || (la == lb && a < b);
    });
    const double mx = clean(logits[size_t(ids[0])]);
    const auto weight = [&](size_t id) { return std::exp((double(clean(logits[id])) - mx) * (1.0 / t)); };
    double total = 0;
    for (size_t i = 0; i < logits.size(); ++i) total += weight(i);
    while (weights.size() < ids.size()) {
      weights.push_back(weight(size_t(ids[weights.size()])));
      mass += weights.back();
      if (mass >= top_p * total) break;
    }
    ids.resize(weights.size());
  }

  int32_t draw(std::mt19937_64& rng) const {
    double r = double(rng() >> 11) * 0x1.0p-53 * mass;
    for (size_t i = 0; i < ids.size(); ++i) {
      r -= weights[i];
      if (r < 0) return ids[i];
    }
    for (size_t i = ids.size(); i-- > 0;)
      if (weights[i] > 0) return ids[i];
    return ids[0];
  }
};

}  // namespace

TEST_CASE("top-p draws exactly as sorting every id would, over a full vocabulary") {
  // The sampler orders only the ids that can be in the nucleus; each draw must be the one the
  // definition gives, whatever the shape of the distribution.
  std::mt19937 gen(17);
  for (double sigma : {0.05, 1.0, 3.0, 8.0}) {
    for (double top_p : {0.0, 0.3, 0.9, 0.95, 0.999999}) {
      CAPTURE(sigma);
      CAPTURE(top_p);
      std::normal_distribution<float> normal(0.0f, float(sigma));
      std::vector<float> logits(129280);
      for (float& v : logits) v = normal(gen);
      if (top_p == 0.0) {
        // The smallest p keeps one id: of -0 and +0, the most likely logits, the lower id.
        for (float& v : logits) v = std::min(v, -1.0f);
        logits[9] = -0.0f;
        logits[10] = 0.0f;
      } else {
        // 200 ids tied as the most likely: the nucleus takes the lower ids first.
        const float top = *std::max_element(logits.begin(), logits.end());
        for (size_t i = 0; i < 200; ++i) logits[1000 + i] = top + 0.5f;
      }
      logits[7] = -std::numeric_limits<float>::infinity();
      logits[8] = std::nanf("");
      const double t = sigma < 1 ? 0.02 : 1.0;
      Sampler s({.temperature = t, .top_p = top_p, .seed = 1234});
      std::mt19937_64 rng(1234);
      const ReferenceNucleus nucleus(logits, t, top_p);
      int differ = 0;
      for (int i = 0; i < 20; ++i) differ += s.sample(logits) != nucleus.draw(rng);
      CHECK(differ == 0);
    }
  }
}
