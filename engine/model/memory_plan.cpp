// Per-rank memory of a model before loading (see memory_plan.hpp).
#include "engine/model/memory_plan.hpp"

#include <algorithm>
#include <cstdio>

#include "engine/loader/safetensors.hpp"
#include "engine/model/inventory.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/indexer.hpp"

namespace dsa {

namespace {

// With kMaxPlanTokens and kMaxPlanSequences, every sum stays below 2^64: a valid config's weights
// take less than 2^58 bytes, the workspace less than 2^62, each cache at most this.
constexpr uint64_t kMaxCacheBytes = uint64_t(1) << 60;  // 1 EiB

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Where a tensor lives: on every rank, on one rank, or split evenly over all of them.
enum class Placement { every_rank, one_rank, split };

Placement placement(const TensorSpec& t, const ModelConfig& c, int64_t n_ranks, int* owner) {
  if (t.expert >= 0) {
    *owner = int(t.expert % n_ranks);
    return Placement::one_rank;
  }
  if (contains(t.name, ".mlp.shared_experts.")) {
    *owner = c.shared_experts_rank(t.layer, n_ranks);
    return Placement::one_rank;
  }
  if (contains(t.name, ".self_attn.q_b_proj.") || contains(t.name, ".self_attn.kv_b_proj.") ||
      contains(t.name, ".mlp.gate_proj.") || contains(t.name, ".mlp.up_proj."))
    return Placement::split;
  if ((contains(t.name, ".self_attn.o_proj.") || contains(t.name, ".mlp.down_proj.")) && c.splits_hidden_rows(n_ranks))
    return Placement::split;
  if ((t.name == "lm_head.weight" || t.name == "model.embed_tokens.weight") && c.splits_vocab(n_ranks))
    return Placement::split;
  return Placement::every_rank;
}

// Activations of one prefill chunk of C tokens on one rank, in f32: the residual stream and its
// normed copies, a rank's share of a projection to the hidden size before the gather, q / k / v of
// this rank's heads, the indexer's q, the MLP's intermediate (the dense layers' split one or the
// routed experts' for every token), the routed experts' outputs (a row per routed pair), the
// chunk's indexer logits over the whole context and its selected positions, and one row of logits
// per sequence. Plus the routed rows quantised (e4m3 codes and their scales: the tokens, or the
// experts' activations), and the most scratch one GPU kernel takes while it runs: a linear's (the
// FP8 GEMM through cuBLASLt: the chunk's e4m3 codes, its bf16 product and a 32 MiB workspace; the
// bf16 one: its rows as bf16, the widest every head's absorbed latent) for the widest linear on a
// rank, or the split-KV attention's partial outputs (before sm_80: a latent and two floats per
// query and head).
uint64_t workspace_bytes(const ModelConfig& c, const MemoryPlanOptions& o) {
  const int64_t n = o.ranks, C = o.prefill_chunk;
  const int64_t heads = c.num_attention_heads / n;
  const int64_t per_token = 7 * c.hidden_size + heads * (2 * c.qk_head_dim() + c.v_head_dim) +
                            c.index_n_heads * c.index_head_dim +
                            3 * std::max(c.intermediate_size / n, c.num_experts_per_tok * c.moe_intermediate_size);
  const int64_t routed = c.num_experts_per_tok * c.hidden_size;
  const int64_t floats = C * (per_token + routed) + C * o.context + C * c.index_topk + o.sequences * c.vocab_size;
  const int64_t codes = C * std::max(c.hidden_size, c.num_experts_per_tok * c.moe_intermediate_size);
  const int64_t routed_codes = codes + codes / 128 * int64_t(sizeof(float));
  const int64_t widest = std::max({c.hidden_size, c.intermediate_size / n, c.moe_intermediate_size,
                                   heads * c.qk_head_dim(), heads * c.v_head_dim, heads * c.kv_lora_rank});
  const int64_t gemm_scratch = C * widest + 2 * C * widest + (int64_t(32) << 20);
  const int64_t attention_partials = C * heads * (c.kv_lora_rank + 2) * int64_t(sizeof(float));
  return uint64_t(floats) * sizeof(float) + uint64_t(routed_codes) +
         uint64_t(std::max(gemm_scratch, attention_partials));
}

}  // namespace

CacheBytesPerToken cache_bytes_per_token(const ModelConfig& c, bool fp8_cache) {
  const uint64_t layers = uint64_t(c.num_hidden_layers);
  CacheBytesPerToken b;
  b.latent = layers * cpu::latent_record_bytes(fp8_cache ? cpu::LatentFormat::fp8 : cpu::LatentFormat::bf16,
                                               c.kv_lora_rank, c.qk_rope_head_dim);
  b.indexer = layers * cpu::indexer_page_bytes(c.index_head_dim) / uint64_t(cpu::kIndexerPageTokens);
  return b;
}

int MemoryPlan::largest_rank() const {
  int best = 0;
  for (size_t r = 1; r < ranks.size(); ++r)
    if (ranks[r].total() > ranks[size_t(best)].total()) best = int(r);
  return best;
}

Result<MemoryPlan> plan_memory(const ModelConfig& c, const MemoryPlanOptions& o) {
  if (o.ranks < 1) return make_error("memory plan: ranks must be at least 1");
  if (o.context < 1 || o.sequences < 1 || o.prefill_chunk < 1)
    return make_error("memory plan: context, sequences and prefill chunk must be at least 1");
  // With these bounds and validate_config's, the workspace estimate fits in 64 bits.
  if (o.context > kMaxPlanTokens || o.prefill_chunk > kMaxPlanTokens || o.sequences > kMaxPlanSequences)
    return make_error("memory plan: context and prefill chunk must be at most " + std::to_string(kMaxPlanTokens) +
                      " tokens, sequences at most " + std::to_string(kMaxPlanSequences));
  const int64_t n = o.ranks;
  if (c.num_attention_heads % n != 0)
    return make_error("memory plan: " + std::to_string(c.num_attention_heads) + " attention heads do not split over " +
                      std::to_string(n) + " ranks");
  if (c.intermediate_size % n != 0)
    return make_error("memory plan: the dense intermediate size " + std::to_string(c.intermediate_size) +
                      " does not split over " + std::to_string(n) + " ranks");
  if (c.n_routed_experts % n != 0)
    return make_error("memory plan: " + std::to_string(c.n_routed_experts) + " routed experts do not split over " +
                      std::to_string(n) + " ranks");

  MemoryPlan plan;
  plan.options = o;
  plan.ranks.resize(size_t(n));
  for (const TensorSpec& t : tensor_inventory(c)) {
    const uint64_t bytes = uint64_t(t.numel()) * dtype_size(t.dtype);
    plan.checkpoint_bytes += bytes;
    int owner = 0;
    switch (placement(t, c, n, &owner)) {
      case Placement::every_rank:
        for (auto& r : plan.ranks) r.weights += bytes;
        break;
      case Placement::one_rank:
        plan.ranks[size_t(owner)].weights += bytes;
        break;
      case Placement::split:
        for (auto& r : plan.ranks) r.weights += bytes / uint64_t(n);
        break;
    }
  }

  // Whole 64-token pages, as KvCache allocates them.
  const uint64_t tokens = uint64_t((o.context + cpu::kIndexerPageTokens - 1) / cpu::kIndexerPageTokens *
                                   cpu::kIndexerPageTokens * o.sequences);
  const CacheBytesPerToken per_token = cache_bytes_per_token(c, o.fp8_cache);
  uint64_t latent = 0, indexer = 0;
  if (__builtin_mul_overflow(tokens, per_token.latent, &latent) ||
      __builtin_mul_overflow(tokens, per_token.indexer, &indexer) || latent > kMaxCacheBytes ||
      indexer > kMaxCacheBytes) {
    return make_error("memory plan: the caches of " + std::to_string(o.sequences) + " sequence(s) of " +
                      std::to_string(o.context) + " tokens need more than 1 EiB");
  }
  const uint64_t workspace = workspace_bytes(c, o);
  for (auto& r : plan.ranks) {
    r.latent_cache = latent;
    r.indexer_cache = indexer;
    r.workspace = workspace;
  }
  return plan;
}

int64_t max_sequences(const ModelConfig& c, MemoryPlanOptions o, uint64_t device_bytes) {
  auto fits = [&](int64_t n) {
    o.sequences = n;
    auto plan = plan_memory(c, o);
    return plan.ok() && check_fits(*plan, device_bytes).ok();
  };
  if (!fits(1)) return 0;
  int64_t lo = 1, hi = 2;  // fits(lo); grow hi until it does not fit
  while (fits(hi) && hi < kMaxPlanSequences) lo = hi, hi *= 2;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1ull << 30));
  return buf;
}

Result<void> check_fits(const MemoryPlan& plan, uint64_t device_bytes) {
  const int r = plan.largest_rank();
  const RankMemory& m = plan.ranks[size_t(r)];
  if (m.total() <= device_bytes) return {};
  return make_error("needs " + gib(m.total()) + " per GPU (rank " + std::to_string(r) + ": weights " + gib(m.weights) +
                    ", caches " + gib(m.latent_cache + m.indexer_cache) + ", workspace " + gib(m.workspace) +
                    "), the device has " + gib(device_bytes));
}

}  // namespace dsa
