// A backend without the memory for a prefill chunk: the Generator and the BatchScheduler forward
// the prompt in smaller chunks instead of failing the request, and give what a backend with room
// gives (the backend model's prefill is its decode path per query, so chunks do not change a bit).
// The backend is the CPU one bounded to what a run in chunks of 8 held at its largest.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "engine/backend/backend_cpu.hpp"
#include "engine/model/backend_model.hpp"
#include "engine/runtime/generator.hpp"
#include "engine/runtime/scheduler.hpp"
#include "tests/unit/runtime/runtime_test_support.hpp"

using namespace dsa;
using dsa::test::golden_fp8;
using dsa::test::tiny_fp8_dir;

namespace {

constexpr int64_t kContext = 256;

struct Bounded {
  std::unique_ptr<BackendModel> model;
  CpuBackend* memory = nullptr;
};

Bounded backend_model() {
  auto backend = std::make_unique<CpuBackend>();
  CpuBackend* memory = backend.get();
  auto m = BackendModel::load(tiny_fp8_dir(), AttentionMode::sparse, std::move(backend));
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
  return {std::move(*m), memory};
}

GenerateParams params(int64_t prefill_chunk) {
  GenerateParams p;
  p.max_tokens = 6;
  p.prefill_chunk = prefill_chunk;
  p.top_logprobs = 2;
  return p;
}

// The golden prompt, 60 ids.
std::vector<int32_t> prompt() { return golden_fp8().prompt; }

// What the Generator gives with room, and the most the backend held for it, in chunks of `chunk`.
std::pair<Generation, size_t> with_room(int64_t chunk) {
  Bounded b = backend_model();
  Generator gen(std::move(b.model), cpu::LatentFormat::fp8, kContext);
  auto g = gen.generate(prompt(), params(chunk), {});
  REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.error().message));
  return {*g, b.memory->held()};  // buffers never shrink on success: the end is the peak
}

void check_same(const Generation& got, const Generation& want) {
  CHECK(got.tokens == want.tokens);
  REQUIRE(got.logprobs.size() == want.logprobs.size());
  for (size_t i = 0; i < got.logprobs.size(); ++i) CHECK(got.logprobs[i].chosen == want.logprobs[i].chosen);
}

}  // namespace

TEST_CASE("a prefill chunk that does not fit the backend's memory is forwarded in halves, changing nothing") {
  const auto [want, held_16] = with_room(16);
  const auto [in_8, held_8] = with_room(8);
  check_same(in_8, want);
  REQUIRE(held_8 < held_16);  // else the bound below would not bind

  SUBCASE("the model alone fails a chunk of 16 with an out-of-memory error") {
    Bounded b = backend_model();
    KvCache cache(b.model->config(), cpu::LatentFormat::fp8, kContext / kPageTokens, b.model->cache_memory());
    b.memory->set_capacity(held_8);
    Sequence seq;
    std::vector<float> logits(size_t(b.model->config().vocab_size));
    const std::vector<int32_t> ids = prompt();
    auto r = b.model->forward(cache, seq, std::span(ids).first(16), logits.data());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().out_of_memory);
    CHECK(r.error().message.find("16 rows do not fit into the cpu memory left for the workspace") != std::string::npos);
    CHECK(seq.n_cached == 0);
    // The buffers the failed call grew are freed: a chunk of 8 fits in what is left.
    CHECK(b.model->forward(cache, seq, std::span(ids).first(8), logits.data()).ok());
  }

  SUBCASE("the Generator") {
    Bounded b = backend_model();
    CpuBackend* memory = b.memory;
    Generator gen(std::move(b.model), cpu::LatentFormat::fp8, kContext);
    memory->set_capacity(held_8);
    auto g = gen.generate(prompt(), params(16), {});
    REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.error().message));
    check_same(*g, want);
  }

  SUBCASE("the BatchScheduler, which keeps the smaller chunk for later steps") {
    Bounded b = backend_model();
    CpuBackend* memory = b.memory;
    BatchScheduler s(
        std::move(b.model), cpu::LatentFormat::fp8,
        SchedulerOptions{.max_context = kContext, .pool_tokens = kContext, .n_slots = 2, .prefill_chunk = 16});
    memory->set_capacity(held_8);
    auto g = s.generate(prompt(), params(16), {});
    REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.error().message));
    check_same(*g, want);
    // 8 or 4: what the failed larger chunks left grown shapes the memory the smaller ones find.
    CHECK(s.prefill_chunk() < 16);
    CHECK(s.prefill_chunk() >= 4);
  }

  SUBCASE("with no room even for the smallest chunk the request fails with the backend's error") {
    Bounded b = backend_model();
    CpuBackend* memory = b.memory;
    Generator gen(std::move(b.model), cpu::LatentFormat::fp8, kContext);
    memory->set_capacity(memory->held());
    auto g = gen.generate(prompt(), params(16), {});
    REQUIRE_FALSE(g.ok());
    CHECK(g.error().out_of_memory);
  }
}
