// The per-rank memory plan of DeepSeek-V3.2 (the config defaults are its published values) against
// numbers counted independently by tests/golden/memory_plan_v32.py, and the verdicts for 8 H100s
// and 8 H200s.
#include <doctest/doctest.h>

#include "engine/model/config.hpp"
#include "engine/model/memory_plan.hpp"
#include "kernels/cpu/attention.hpp"

using namespace dsa;

namespace {

constexpr uint64_t kH100 = 81559ull << 20;  // what an H100 80GB reports (MiB)
constexpr uint64_t kH200 = 143771ull << 20;

}  // namespace

TEST_CASE("memory plan: one rank holds the whole checkpoint and the caches of its context") {
  MemoryPlanOptions o;
  o.ranks = 1;
  const auto plan = plan_memory(ModelConfig{}, o);
  REQUIRE(plan.ok());
  CHECK(plan->checkpoint_bytes == 674030368448ull);  // memory_plan_v32.py
  REQUIRE(plan->ranks.size() == 1);
  CHECK(plan->ranks[0].weights == plan->checkpoint_bytes);
  CHECK(plan->ranks[0].latent_cache == 5244977152ull);  // 656 B x 61 layers x 128K
  CHECK(plan->ranks[0].indexer_cache == 1055391744ull);  // 132 B x 61 layers x 128K
  o.fp8_cache = false;
  CHECK(plan_memory(ModelConfig{}, o)->ranks[0].latent_cache == 131072ull * 61 * 2 * (512 + 64));
}

TEST_CASE("memory plan: 8 ranks share the experts and the split projections") {
  MemoryPlanOptions o;
  o.ranks = 8;
  o.sequences = 4;
  o.context = 100000;  // rounded up to whole 64-token pages
  const auto plan = plan_memory(ModelConfig{}, o);
  REQUIRE(plan.ok());
  REQUIRE(plan->ranks.size() == 8);
  // memory_plan_v32.py: the shared experts of layers 3..60 on rank layer % 8, so ranks 3 and 4 hold
  // eight of them, the others seven.
  for (int r = 0; r < 8; ++r) {
    CAPTURE(r);
    CHECK(plan->ranks[size_t(r)].weights == (r == 3 || r == 4 ? 86052925696ull : 86008874752ull));
  }
  CHECK(plan->largest_rank() == 3);
  // 16 ranks: 448 hidden rows each would cut a 128-row scale block, so o_proj and the dense
  // down_proj stay whole on every rank.
  o.ranks = 16;
  const auto plan16 = plan_memory(ModelConfig{}, o);
  REQUIRE(plan16.ok());
  CHECK(plan16->ranks[0].weights == 51081055808ull);  // memory_plan_v32.py
  CHECK(plan16->ranks[3].weights == 51125106752ull);
  o.ranks = 8;
  CHECK(plan->ranks[3].latent_cache == 4ull * 100032 * 61 * 656);
  CHECK(plan->ranks[3].indexer_cache == 4ull * 100032 * 61 * 132);
}

TEST_CASE("memory plan: DeepSeek-V3.2 FP8 fits 8 H200s and not 8 H100s") {
  MemoryPlanOptions o;
  o.ranks = 8;
  o.sequences = 1;
  const auto plan = plan_memory(ModelConfig{}, o);
  REQUIRE(plan.ok());
  CHECK(check_fits(*plan, kH200).ok());
  const auto h100 = check_fits(*plan, kH100);
  REQUIRE_FALSE(h100.ok());
  CHECK(h100.error().message.find("per GPU (rank 3: weights 80.14 GiB") != std::string::npos);
  CHECK(h100.error().message.find("the device has 79.65 GiB") != std::string::npos);
  // The weights alone exceed an H100 on every rank.
  for (const auto& r : plan->ranks) CHECK(r.weights > kH100);
  // How many 128K sequences an H200 holds: the most that still fit, one more does not.
  const int64_t fits = max_sequences(ModelConfig{}, o, kH200);
  CHECK(fits >= 6);
  CHECK(fits <= 10);
  o.sequences = fits;
  CHECK(check_fits(*plan_memory(ModelConfig{}, o), kH200).ok());
  o.sequences = fits + 1;
  CHECK_FALSE(check_fits(*plan_memory(ModelConfig{}, o), kH200).ok());
  CHECK(max_sequences(ModelConfig{}, o, kH100) == 0);
}

TEST_CASE("memory plan: uneven splits and bad options are one-line errors") {
  MemoryPlanOptions o;
  o.ranks = 3;
  auto bad = plan_memory(ModelConfig{}, o);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "memory plan: 128 attention heads do not split over 3 ranks");
  o.ranks = 0;
  CHECK_FALSE(plan_memory(ModelConfig{}, o).ok());
  o.ranks = 1;
  o.context = 0;
  CHECK_FALSE(plan_memory(ModelConfig{}, o).ok());
}

TEST_CASE("memory plan: sizes past the limits are one-line errors, never wrapped numbers") {
  MemoryPlanOptions o;
  o.sequences = kMaxPlanSequences + 1;
  CHECK(plan_memory(ModelConfig{}, o).error().message ==
        "memory plan: context and prefill chunk must be at most 16777216 tokens, sequences at most 1048576");
  o.sequences = 1;
  o.context = kMaxPlanTokens + 1;
  CHECK_FALSE(plan_memory(ModelConfig{}, o).ok());

  // Within every limit, the caches of a deep, wide model would need more bytes than 64 bits count.
  ModelConfig c;
  c.num_hidden_layers = 4096;
  c.kv_lora_rank = 1 << 16;
  c.first_k_dense_replace = 4096;  // dense only: no experts to place
  REQUIRE(validate_config(c, "c").ok());
  o.context = kMaxPlanTokens;
  o.sequences = kMaxPlanSequences;
  o.ranks = 1;
  const auto plan = plan_memory(c, o);
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.error().message ==
        "memory plan: the caches of 1048576 sequence(s) of 16777216 tokens need more than 1 EiB");
  o.sequences = 1;
  const auto one = plan_memory(c, o);
  REQUIRE(one.ok());
  CHECK(one->ranks[0].latent_cache ==
        uint64_t(16777216) * 4096 *
            cpu::latent_record_bytes(cpu::LatentFormat::fp8, c.kv_lora_rank, c.qk_rope_head_dim));
}
