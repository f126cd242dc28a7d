// ForwardPass: what generation needs of a model, whichever engine runs it. Model is the CPU engine
// (the reference and the fast CPU path); BackendModel runs the same forward pass on a Backend (a
// GPU). The generator, the scheduler and LocalLlm hold a ForwardPass and do not know which.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/backend/backend.hpp"
#include "engine/model/config.hpp"
#include "engine/model/phase_times.hpp"
#include "engine/runtime/kv_cache.hpp"

namespace dsa {

enum class AttentionMode { sparse, dense };  // dense: full causal attention, for comparison

using TopkSets = std::vector<std::vector<std::vector<int32_t>>>;  // [layer][query]: positions, ascending

// Optional per-call record for tests and diagnostics; forward() resets it (forced_topk aside).
struct ForwardTrace {
  std::vector<std::vector<float>> hidden;  // [layer][S * hidden]: ffn out + residual, fp32
  TopkSets topk;                           // the indexer's own selection (also in dense mode)
  int64_t keys_attended = 0;               // cached keys read by attention: sum over layers and queries
  // When set, attention uses these selections instead of the indexer's (which is still recorded in
  // topk): golden tests compare the attention numerics without near-tie selection flips cascading.
  const TopkSets* forced_topk = nullptr;
};

// Empties the record of a forward call over n_layers layers (forced_topk stays; it must have one
// entry per layer). Nothing when trace is null.
inline void start_trace(ForwardTrace* trace, int64_t n_layers) {
  if (!trace) return;
  DSA_CHECK(!trace->forced_topk || static_cast<int64_t>(trace->forced_topk->size()) == n_layers,
            "forced_topk needs one entry per layer");
  trace->hidden.assign(static_cast<size_t>(n_layers), {});
  trace->topk.assign(static_cast<size_t>(n_layers), {});
  trace->keys_attended = 0;
}

class ForwardPass {
 public:
  virtual ~ForwardPass() = default;

  virtual const ModelConfig& config() const = 0;

  // Runs tokens at positions seq.n_cached.. and writes the last token's logits [vocab] fp32 (host).
  // Errors (seq.n_cached unchanged): no tokens, a token id out of range, a position past
  // max_position_embeddings, the cache pool exhausted, or (a backend's) the workspace out of
  // memory. On a rank of a tensor-parallel group every error is every rank's: the ranks stay in step.
  virtual Result<void> forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                               ForwardTrace* trace = nullptr) = 0;

  // One new token for each of B = seqs.size() distinct sequences, each at its own position
  // seqs[b]->n_cached, as one pass over the layers; logits [B, vocab] fp32 (host), what B separate
  // forward() calls give. Errors (no sequence advanced): as forward(), plus B == 0,
  // tokens.size() != B, or a sequence given twice.
  virtual Result<void> forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs,
                                            std::span<const int32_t> tokens, float* logits,
                                            ForwardTrace* trace = nullptr) = 0;

  // Every later forward call adds its time per phase to *times (null: stop timing).
  virtual void set_phase_times(PhaseTimes* times) = 0;

  // Where this model's caches must live (KvCache's memory): null for host memory.
  virtual Backend* cache_memory() const { return nullptr; }

  // A cache pool of n_pages pages for this model, in its memory (a RankGroup adds the other ranks'
  // mirrors, owned by the group).
  virtual KvCache make_cache(cpu::LatentFormat format, int64_t n_pages) {
    return KvCache(config(), format, n_pages, cache_memory());
  }
};

}  // namespace dsa
