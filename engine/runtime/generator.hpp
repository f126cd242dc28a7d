// Generator: one model, its paged caches and one prefix-cached sequence. A request whose ids start
// with the ids already cached reuses those cache entries (usage reports them as cached_tokens) and
// prefills only the rest (at least the last two prompt tokens, so that a repeated prompt takes the
// prefill path a cold run takes and gives the same result), then decodes with the sampler until
// EOS, max_tokens, or the callback asks to stop (stop strings and interruption are decided by the
// caller, which sees text). The
// context bounds prompt + generated tokens: generation ends when the cache is full.
// Not thread-safe: one request at a time. The engine serves requests through BatchScheduler
// (scheduler.hpp), which gives the same results; this plain single-sequence loop stays as the
// reference its tests compare against.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/model/forward_pass.hpp"
#include "engine/runtime/kv_cache.hpp"
#include "engine/runtime/sampler.hpp"

namespace dsa {

struct GenerateParams {
  int64_t max_tokens = 256;
  SamplerOptions sampling;
  // Tokens per forward call while prefilling (bounds the workspace; halved for the rest of the
  // prompt when a chunk does not fit the backend's memory); BatchScheduler chunks by its own
  // SchedulerOptions::prefill_chunk instead.
  int64_t prefill_chunk = 512;
  std::span<const int32_t> masked_ids;  // ids never sampled (e.g. ids with no token): logits set to -inf
  int top_logprobs = -1;  // >= 0: record each generated token's log-probability and the n most likely
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids, EOS included when hit
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;    // prompt tokens whose cache entries were reused
  bool hit_eos = false;
  std::vector<StepLogprobs> logprobs;  // per generated token, when GenerateParams::top_logprobs >= 0
};

// The latent record format the engine runs with: FP8 (FlashMLA's record) when kv_lora_rank allows
// it, else bf16; both hold the same values.
inline cpu::LatentFormat default_latent_format(const ModelConfig& cfg) {
  return cfg.kv_lora_rank % 128 == 0 ? cpu::LatentFormat::fp8 : cpu::LatentFormat::bf16;
}

// Called with each generated id (EOS included); returning true stops generation after it.
using TokenCallback = std::function<bool(int32_t id)>;

class Generator {
 public:
  Generator(std::unique_ptr<ForwardPass> model, cpu::LatentFormat latent_format, int64_t max_context);

  Result<Generation> generate(std::span<const int32_t> prompt, const GenerateParams& params,
                              const TokenCallback& on_token);

  const ForwardPass& model() const { return *model_; }
  int64_t max_context() const { return max_context_; }

 private:
  // Forwards tokens at seq_.n_cached.. into logits_ and records them as cached; on error the
  // sequence is cut back to the ids cached before.
  Result<void> run(std::span<const int32_t> tokens);

  std::unique_ptr<ForwardPass> model_;
  int64_t max_context_;
  KvCache cache_;
  Sequence seq_;
  std::vector<int32_t> cached_ids_;  // the ids whose entries seq_ holds, in order
  std::vector<float> logits_;
};

}  // namespace dsa
