// How much memory each rank needs to serve a model, before anything is loaded: the weights it uses
// under the parallel layout of Model (model.hpp), its KV and indexer caches for the requested
// context, and a workspace estimate; and whether that fits a device of a given size.
//
// Layout over n ranks (as Model::load binds and runs it): routed expert e on rank e % n; a layer's
// shared experts on rank layer % n; q_b_proj, kv_b_proj and the dense MLP's gate/up_proj split n
// ways (tensor parallel), and o_proj and the dense down_proj by output rows where the hidden size
// splits into whole scale blocks (ModelConfig::splits_hidden_rows: 8 ways for V3.2, not 16),
// lm_head and the embedding by vocabulary rows where the vocabulary splits evenly; everything else
// (norms, q_a/kv_a_proj, the indexer, the router) on every rank. Every rank keeps the whole latent
// and indexer cache: the latent is shared by all heads and every rank runs the same indexer and
// top-k.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/model/config.hpp"

namespace dsa {

// The largest context and prefill chunk (tokens), and sequences, a plan takes.
inline constexpr int64_t kMaxPlanTokens = int64_t(1) << 24;
inline constexpr int64_t kMaxPlanSequences = int64_t(1) << 20;

struct MemoryPlanOptions {
  int ranks = 1;                 // GPUs (tensor and expert parallel over the same ranks)
  int64_t context = 131072;      // tokens per sequence
  int64_t sequences = 1;         // sequences held at full context at once
  bool fp8_cache = true;         // latent records: FlashMLA's FP8 (656 B per layer for V3.2) or bf16
  int64_t prefill_chunk = 4096;  // tokens per prefill step: sizes the workspace
};

struct RankMemory {
  uint64_t weights = 0;        // checkpoint bytes this rank uses (FP8 weights keep their scales)
  uint64_t latent_cache = 0;   // 64-token pages for context x sequences
  uint64_t indexer_cache = 0;  // likewise
  uint64_t workspace = 0;      // activations of one prefill chunk (an upper estimate, see memory_plan.cpp)
  uint64_t total() const { return weights + latent_cache + indexer_cache + workspace; }
};

struct MemoryPlan {
  MemoryPlanOptions options;
  uint64_t checkpoint_bytes = 0;  // every main-model tensor (the MTP layers are not loaded)
  std::vector<RankMemory> ranks;  // one per rank
  int largest_rank() const;       // the rank with the largest total
};

// Cache bytes per token over all main layers: the latent record (FlashMLA's FP8 record, 656 B per
// layer for V3.2, or bf16) and the indexer key with its scale.
struct CacheBytesPerToken {
  uint64_t latent = 0;
  uint64_t indexer = 0;
};
CacheBytesPerToken cache_bytes_per_token(const ModelConfig& c, bool fp8_cache);

// Errors when ranks < 1, context, sequences or prefill_chunk < 1 or beyond the limits above, either
// cache beyond 2^60 bytes (1 EiB), or
// n_routed_experts, the heads or the dense intermediate do not split evenly over the ranks.
Result<MemoryPlan> plan_memory(const ModelConfig& c, const MemoryPlanOptions& o);

// Nothing when every rank fits into device_bytes; else one line naming the largest rank's need,
// its parts and the device's size, e.g.
//   "needs 89.1 GiB per GPU (rank 0: weights 85.2 GiB, caches 3.4 GiB, workspace 0.5 GiB), the device has 79.1 GiB"
Result<void> check_fits(const MemoryPlan& plan, uint64_t device_bytes);

// The most sequences of o.context tokens that fit into device_bytes per GPU (0: not even one; at
// most kMaxPlanSequences).
int64_t max_sequences(const ModelConfig& c, MemoryPlanOptions o, uint64_t device_bytes);

// "85.21 GiB"
std::string gib(uint64_t bytes);

}  // namespace dsa
