// Reading the engine golden fixtures (tests/fixtures/engine/README.md): golden_<fmt>.json names the
// float32 arrays of golden_<fmt>.bin; plus small helpers to run the tiny models and compare floats.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/model/model.hpp"
#include "engine/runtime/kv_cache.hpp"
#include "tests/test_support.hpp"

namespace dsa::test {

struct Golden {
  nlohmann::json meta;
  std::vector<float> data;

  static Golden load(const std::string& fmt) {
    Golden g;
    const auto dir = fixtures_dir() / "engine";
    g.meta = nlohmann::json::parse(read_text(dir / ("golden_" + fmt + ".json")));
    const std::string bin = read_text(dir / g.meta["bin"].get<std::string>());
    g.data.resize(bin.size() / sizeof(float));
    std::memcpy(g.data.data(), bin.data(), g.data.size() * sizeof(float));
    return g;
  }
  std::span<const float> array(const std::string& name) const {
    const auto& a = meta["arrays"].at(name);
    size_t n = 1;
    for (const auto& d : a["shape"]) n *= d.get<size_t>();
    return {data.data() + a["offset"].get<size_t>(), n};
  }
  std::vector<int32_t> ids(const std::string& key) const { return meta[key].get<std::vector<int32_t>>(); }
  // Prefill top-k sets [layer][query].
  TopkSets prefill_topk() const { return meta["topk"].get<TopkSets>(); }
  // Decode step i's sets as a one-query TopkSets [layer][0].
  TopkSets decode_topk(size_t step) const {
    TopkSets t;
    for (const auto& layer : meta["decode_topk"][step]) t.push_back({layer.get<std::vector<int32_t>>()});
    return t;
  }
};

struct Diff {
  double max_abs = 0;  // max |a - b|
  double max_ref = 0;  // max |b|
  double rel() const { return max_ref > 0 ? max_abs / max_ref : max_abs; }
};

inline Diff diff(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) throw std::runtime_error("diff: size mismatch");
  Diff d;
  for (size_t i = 0; i < a.size(); ++i) {
    d.max_abs = std::max(d.max_abs, std::fabs(double(a[i]) - double(b[i])));
    d.max_ref = std::max(d.max_ref, std::fabs(double(b[i])));
  }
  return d;
}

inline int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// One tiny model with its own cache and sequence.
struct TinyRun {
  std::unique_ptr<Model> model;
  std::unique_ptr<KvCache> cache;
  Sequence seq;
  std::vector<float> logits;

  explicit TinyRun(const std::string& fmt, AttentionMode mode = AttentionMode::sparse, int64_t n_pages = 4) {
    auto m = Model::load(fixtures_dir() / "engine" / ("tiny-" + fmt), mode);
    if (!m) throw std::runtime_error(m.error().message);
    model = std::move(m.value());
    cache = std::make_unique<KvCache>(model->config(), cpu::LatentFormat::bf16, n_pages);
    logits.resize(static_cast<size_t>(model->config().vocab_size));
  }
  Result<void> step(std::span<const int32_t> tokens, ForwardTrace* trace = nullptr) {
    return model->forward(*cache, seq, tokens, logits.data(), trace);
  }
};

}  // namespace dsa::test
