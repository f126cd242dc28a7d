// A backend without the memory for a prefill chunk: the Generator and the BatchScheduler forward
// the prompt in smaller chunks instead of failing the request, and give what a backend with room
// gives (the backend model's prefill is its decode path per query, so chunks do not change a bit).
// The backend is the CPU one bounded to what a run in chunks of 8 held at its largest.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
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

// What the Generator gives with room, and the most the backend held for it (the ops' scratch
// included), in chunks of `chunk`.
std::pair<Generation, size_t> with_room(int64_t chunk) {
  Bounded b = backend_model();
  Generator gen(std::move(b.model), cpu::LatentFormat::fp8, kContext);
  auto g = gen.generate(prompt(), params(chunk), {});
  REQUIRE_MESSAGE(g.ok(), (g.ok() ? "" : g.error().message));
  return {*g, b.memory->peak()};
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

namespace {

// Rank 0 of two whose peer holds and sends what it does: the collectives complete at once, so a
// rank that stops in the middle of a forward can be watched without a peer left waiting.
class MirroredPeerComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void all_reduce_sum(float* data, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) data[i] += data[i];
  }
  void all_gather(const float* in, int64_t n, float* out) override {
    std::copy_n(in, n, out);
    std::copy_n(in, n, out + n);
  }
  void broadcast(float*, int64_t, int) override {}
};

// The workspace of one forward of `rows` prompt tokens, and the most held with its ops' scratch.
struct Footprint {
  size_t workspace_end = 0, peak = 0;
};

Footprint footprint(int64_t rows, Comm* comm) {
  auto backend = std::make_unique<CpuBackend>();
  CpuBackend* memory = backend.get();
  auto m = BackendModel::load(tiny_fp8_dir(), AttentionMode::sparse, std::move(backend), {}, comm);
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
  KvCache cache((*m)->config(), cpu::LatentFormat::fp8, kContext / kPageTokens, (*m)->cache_memory());
  Sequence seq;
  std::vector<float> logits(size_t((*m)->config().vocab_size));
  const std::vector<int32_t> ids = prompt();
  REQUIRE((*m)->forward(cache, seq, std::span(ids).first(size_t(rows)), logits.data()).ok());
  return {memory->held(), memory->peak()};
}

}  // namespace

TEST_CASE("an op's scratch that does not fit beside the workspace fails the call, or stops a rank group") {
  const std::vector<int32_t> ids = prompt();
  SUBCASE("alone: an out-of-memory error, the buffers the call grew freed, and a smaller chunk fits") {
    // Room for the workspace of 16 rows (begin() grows it exactly as the unbounded run did) but not
    // for the scratch of their first FP8 projection.
    const Footprint f = footprint(16, nullptr);
    REQUIRE(f.peak > f.workspace_end);
    Bounded b = backend_model();
    KvCache cache(b.model->config(), cpu::LatentFormat::fp8, kContext / kPageTokens, b.model->cache_memory());
    const size_t before = b.memory->held();
    b.memory->set_capacity(f.workspace_end);
    Sequence seq;
    std::vector<float> logits(size_t(b.model->config().vocab_size));
    auto r = b.model->forward(cache, seq, std::span(ids).first(16), logits.data());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().out_of_memory);
    CHECK(r.error().message.find("16 rows do not fit into the cpu memory") != std::string::npos);
    CHECK(seq.n_cached == 0);
    CHECK(b.memory->held() == before);

    REQUIRE(b.model->forward(cache, seq, std::span(ids).first(8), logits.data()).ok());
    Bounded room = backend_model();
    KvCache room_cache(room.model->config(), cpu::LatentFormat::fp8, kContext / kPageTokens,
                       room.model->cache_memory());
    Sequence room_seq;
    std::vector<float> want(logits.size());
    REQUIRE(room.model->forward(room_cache, room_seq, std::span(ids).first(8), want.data()).ok());
    CHECK(logits == want);
  }

  SUBCASE("one of several ranks: the group cannot go on, and the rank says why") {
    MirroredPeerComm probe_comm;
    const Footprint f = footprint(16, &probe_comm);
    REQUIRE(f.peak > f.workspace_end);
    MirroredPeerComm comm;
    auto backend = std::make_unique<CpuBackend>();
    CpuBackend* memory = backend.get();
    auto m = BackendModel::load(tiny_fp8_dir(), AttentionMode::sparse, std::move(backend), {}, &comm);
    REQUIRE(m.ok());
    std::vector<std::string> lost;
    (*m)->set_on_group_lost([&](const std::string& why) { lost.push_back(why); });
    KvCache cache((*m)->config(), cpu::LatentFormat::fp8, kContext / kPageTokens, (*m)->cache_memory());
    memory->set_capacity(f.workspace_end);
    Sequence seq;
    std::vector<float> logits(size_t((*m)->config().vocab_size));
    auto r = (*m)->forward(cache, seq, std::span(ids).first(16), logits.data());
    CHECK_FALSE(r.ok());
    REQUIRE(lost.size() == 1);
    CHECK(lost[0] ==
          "rank 0 ran out of cpu memory in the middle of a forward of 16 rows (try a smaller prefill "
          "chunk or fewer sequences)");
  }
}

namespace {

// The tiny model, its logits replaced by NaN from the second forward on: what weights holding NaN
// or Inf give.
class NanAfterFirst final : public ForwardPass {
 public:
  explicit NanAfterFirst(std::unique_ptr<BackendModel> m) : m_(std::move(m)) {}
  const ModelConfig& config() const override { return m_->config(); }
  Result<void> forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                       ForwardTrace* trace) override {
    auto r = m_->forward(cache, seq, tokens, logits, trace);
    spoil(logits, 1);
    return r;
  }
  Result<void> forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs, std::span<const int32_t> tokens,
                                    float* logits, ForwardTrace* trace) override {
    auto r = m_->forward_decode_batch(cache, seqs, tokens, logits, trace);
    spoil(logits, int64_t(seqs.size()));
    return r;
  }
  void set_phase_times(PhaseTimes*) override {}
  Backend* cache_memory() const override { return m_->cache_memory(); }

 private:
  void spoil(float* logits, int64_t rows) {
    if (calls_++ == 0) return;
    std::fill_n(logits, rows * config().vocab_size, std::numeric_limits<float>::quiet_NaN());
  }
  std::unique_ptr<BackendModel> m_;
  int calls_ = 0;
};

}  // namespace

TEST_CASE("logits that are all NaN fail the request with a clear error, not a stream of token 0") {
  GenerateParams p = params(64);  // the prompt in one forward; its first token is drawn from real logits
  SUBCASE("the Generator") {
    Generator gen(std::make_unique<NanAfterFirst>(backend_model().model), cpu::LatentFormat::fp8, kContext);
    auto g = gen.generate(prompt(), p, {});
    REQUIRE_FALSE(g.ok());
    CHECK(
        g.error().message ==
        "every logit of output token 1 is NaN or -inf; the checkpoint's weights may hold NaN or Inf values");
  }
  SUBCASE("the BatchScheduler") {
    BatchScheduler s(
        std::make_unique<NanAfterFirst>(backend_model().model), cpu::LatentFormat::fp8,
        SchedulerOptions{.max_context = kContext, .pool_tokens = kContext, .n_slots = 2, .prefill_chunk = 64});
    auto g = s.generate(prompt(), p, {});
    REQUIRE_FALSE(g.ok());
    CHECK(g.error().message.find("every logit of output token 1 is NaN or -inf") != std::string::npos);
  }
}
