// A model whose MoE layers have no shared expert (n_shared_experts 0): it loads and runs on both
// engines, and gives what a model with the same weights and a shared expert of zeros gives.
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>

#include "engine/backend/backend_cpu.hpp"
#include "engine/model/backend_model.hpp"
#include "engine/model/make_model.hpp"
#include "engine/model/model.hpp"
#include "tests/test_support.hpp"

namespace dsa::test {
namespace {

// Overwrites every shared-expert tensor's data with zeros (e4m3 and bf16 zero are all-zero bytes).
void zero_shared_experts(const std::filesystem::path& dir) {
  std::vector<std::pair<size_t, size_t>> ranges;  // offset, bytes
  {
    auto ckpt = Checkpoint::open(dir);
    REQUIRE(ckpt.ok());
    for (const TensorInfo& t : ckpt->tensors())
      if (t.name.find(".mlp.shared_experts.") != std::string::npos && !t.name.ends_with("_scale_inv"))
        ranges.emplace_back(t.offset, t.nbytes);
  }
  REQUIRE_FALSE(ranges.empty());
  std::fstream f(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  for (const auto& [offset, bytes] : ranges) {
    f.seekp(std::streamoff(offset));
    const std::string zeros(bytes, '\0');
    f.write(zeros.data(), std::streamsize(zeros.size()));
  }
  REQUIRE(f.good());
}

// The logits of a prompt, then of one decode step.
std::vector<float> run(ForwardPass& model) {
  KvCache cache = model.make_cache(cpu::LatentFormat::bf16, 4);
  Sequence seq;
  const int64_t V = model.config().vocab_size;
  std::vector<float> logits(size_t(2 * V));
  const std::vector<int32_t> prompt = {5, 17, 300, 42, 9};
  REQUIRE(model.forward(cache, seq, prompt, logits.data()).ok());
  const int32_t next = 77;
  REQUIRE(model.forward(cache, seq, {&next, 1}, logits.data() + V).ok());
  cache.release(seq);
  return logits;
}

TEST_CASE("a model without shared experts runs on Model and BackendModel as if its shared expert output zero") {
  TempDir dir("dsa-no-shared");
  ModelConfig c = *preset_config("tiny");
  REQUIRE(make_model(dir / "zero-shared", c, {.seed = 5}).ok());
  zero_shared_experts(dir / "zero-shared");
  c.n_shared_experts = 0;
  const auto made = make_model(dir / "no-shared", c, {.seed = 5});
  REQUIRE_MESSAGE(made.ok(), (made.ok() ? "" : made.error().message));

  auto with_zeros = Model::load(dir / "zero-shared", AttentionMode::sparse);
  REQUIRE(with_zeros.ok());
  const std::vector<float> expected = run(**with_zeros);

  auto model = Model::load(dir / "no-shared", AttentionMode::sparse);
  REQUIRE_MESSAGE(model.ok(), (model.ok() ? "" : model.error().message));
  CHECK((*model)->config().n_shared_experts == 0);
  CHECK(run(**model) == expected);

  auto backend_model = BackendModel::load(dir / "no-shared", AttentionMode::sparse, std::make_unique<CpuBackend>());
  REQUIRE_MESSAGE(backend_model.ok(), (backend_model.ok() ? "" : backend_model.error().message));
  auto backend_zeros = BackendModel::load(dir / "zero-shared", AttentionMode::sparse, std::make_unique<CpuBackend>());
  REQUIRE(backend_zeros.ok());
  CHECK(run(**backend_model) == run(**backend_zeros));
}

}  // namespace
}  // namespace dsa::test
