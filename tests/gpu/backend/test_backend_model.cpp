// BackendModel on a CUDA GPU against BackendModel on the CPU backend (itself checked bit for bit
// against Model and against the reference in tests/unit/engine/test_backend_model.cpp), on the tiny
// BF16 and FP8 checkpoints: decode token by token, a prefill chunk, a batched decode, and the memory
// check before loading.
//
// Tolerances. The GPU kernels match the CPU's to fp32 rounding before each bf16 rounding, so a
// value can land one bf16 ulp apart where it sits on a rounding boundary; such flips are rare and
// propagate. On the BF16 model logits stay within 0.05 (a few ulps of values of size 1-10). On the
// FP8 model a flipped activation can also move an FP8 code of the next linear's input (1/8 of a
// step), so the bound is 0.5 there, and both models must pick the same greedy id at nearly every
// step (at least 56 of 60).
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend_cpu.hpp"
#include "engine/backend/backend_cuda.hpp"
#include "engine/model/backend_model.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"
#include "tests/test_support.hpp"

namespace dsa::test {
namespace {

std::filesystem::path tiny_dir(const std::string& fmt) { return fixtures_dir() / "engine" / ("tiny-" + fmt); }

std::unique_ptr<BackendModel> load(const std::string& fmt, std::unique_ptr<Backend> be) {
  auto m = BackendModel::load(tiny_dir(fmt), AttentionMode::sparse, std::move(be));
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
  return std::move(m.value());
}

struct Run {
  std::unique_ptr<BackendModel> model;
  std::unique_ptr<KvCache> cache;
  Sequence seq;
  std::vector<float> logits;
  explicit Run(std::unique_ptr<BackendModel> m) : model(std::move(m)) {
    cache = std::make_unique<KvCache>(model->config(), cpu::LatentFormat::fp8, 8, model->cache_memory());
    logits.resize(static_cast<size_t>(model->config().vocab_size));
  }
  void step(std::span<const int32_t> tokens, ForwardTrace* trace = nullptr) {
    const auto r = model->forward(*cache, seq, tokens, logits.data(), trace);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  }
};

double max_abs_diff(std::span<const float> a, std::span<const float> b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
  return d;
}

int32_t argmax(std::span<const float> v) { return int32_t(std::max_element(v.begin(), v.end()) - v.begin()); }

double bound(const std::string& fmt) { return fmt == "bf16" ? 0.05 : 0.5; }

TEST_CASE("BackendModel on CUDA decodes as on the CPU backend, token by token") {
  DSA_REQUIRE_GPU();
  for (const std::string fmt : {"bf16", "fp8"}) {
    Run gpu(load(fmt, std::make_unique<CudaBackend>(0))), cpu(load(fmt, std::make_unique<CpuBackend>()));
    const int64_t vocab = gpu.model->config().vocab_size;
    double worst = 0;
    int same = 0;
    for (int32_t i = 0; i < 60; ++i) {
      const int32_t tok = static_cast<int32_t>((i * 53 + 7) % vocab);
      ForwardTrace tg, tc;
      gpu.step({&tok, 1}, &tg);
      cpu.step({&tok, 1}, &tc);
      if (i < 16) CHECK(tg.topk[0] == tc.topk[0]);  // every key selected while the context fits top-k
      worst = std::max(worst, max_abs_diff(gpu.logits, cpu.logits));
      same += argmax(gpu.logits) == argmax(cpu.logits);
    }
    MESSAGE(fmt << ": 60 decode steps, logits max abs diff " << worst << ", same greedy id " << same << "/60");
    CHECK(worst < bound(fmt));
    CHECK(same >= 56);
  }
}

TEST_CASE("BackendModel on CUDA: a prefill chunk and a batched decode as on the CPU backend") {
  DSA_REQUIRE_GPU();
  for (const std::string fmt : {"bf16", "fp8"}) {
    auto gpu_model = load(fmt, std::make_unique<CudaBackend>(0));
    auto cpu_model = load(fmt, std::make_unique<CpuBackend>());
    const ModelConfig& c = gpu_model->config();
    KvCache gcache(c, cpu::LatentFormat::fp8, 12, gpu_model->cache_memory());
    KvCache ccache(c, cpu::LatentFormat::fp8, 12, cpu_model->cache_memory());
    std::vector<Sequence> gs(3), cs(3);
    std::vector<float> gl(size_t(3 * c.vocab_size)), cl(gl.size());
    for (int b = 0; b < 3; ++b) {
      const int64_t n = b == 0 ? 150 : b == 1 ? 40 : 1;  // 150 > 3 x index_topk: sparse
      std::vector<int32_t> prompt(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) prompt[i] = static_cast<int32_t>((i * 31 + b * 17 + 3) % c.vocab_size);
      REQUIRE(gpu_model->forward(gcache, gs[b], prompt, gl.data()).ok());
      REQUIRE(cpu_model->forward(ccache, cs[b], prompt, cl.data()).ok());
      const double d = max_abs_diff(std::span(gl).first(size_t(c.vocab_size)), std::span(cl).first(size_t(c.vocab_size)));
      MESSAGE(fmt << ": prefill of " << n << " tokens, logits max abs diff " << d);
      CHECK(d < bound(fmt));
    }
    std::vector<Sequence*> grows{&gs[0], &gs[1], &gs[2]}, crows{&cs[0], &cs[1], &cs[2]};
    for (int step = 0; step < 4; ++step) {
      const std::vector<int32_t> toks{int32_t(5 + step), int32_t(900 + step), int32_t(77 * step)};
      REQUIRE(gpu_model->forward_decode_batch(gcache, grows, toks, gl.data()).ok());
      REQUIRE(cpu_model->forward_decode_batch(ccache, crows, toks, cl.data()).ok());
      const double d = max_abs_diff(gl, cl);
      MESSAGE(fmt << ": batched decode step " << step << " (3 sequences), logits max abs diff " << d);
      CHECK(d < bound(fmt));
    }
    for (int b = 0; b < 3; ++b) CHECK(gs[b].n_cached == cs[b].n_cached);
  }
}

TEST_CASE("BackendModel on CUDA checks the memory plan before copying any weight") {
  DSA_REQUIRE_GPU();
  MemoryPlanOptions plan;
  plan.context = 4096;
  plan.sequences = int64_t(1) << 20;  // caches far beyond any GPU
  auto m = BackendModel::load(tiny_dir("fp8"), AttentionMode::sparse, std::make_unique<CudaBackend>(0), plan);
  REQUIRE_FALSE(m.ok());
  MESSAGE(m.error().message);
  CHECK(m.error().message.find("the device has") != std::string::npos);
}

}  // namespace
}  // namespace dsa::test
