// Generator (generator.hpp). The cache holds one exact entry per token, so any prefix of the cached
// ids can be kept: the sequence is cut back to the longest common prefix with the new prompt and
// only the rest is prefilled.
#include "engine/runtime/generator.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace dsa {

Generator::Generator(std::unique_ptr<ForwardPass> model, cpu::LatentFormat latent_format, int64_t max_context)
    : model_(std::move(model)),
      max_context_(max_context),
      cache_(model_->make_cache(latent_format, (max_context + kPageTokens - 1) / kPageTokens)),
      logits_(size_t(model_->config().vocab_size)) {}

Result<void> Generator::run(std::span<const int32_t> tokens) {
  const int64_t start = seq_.n_cached;
  auto r = model_->forward(cache_, seq_, tokens, logits_.data());
  if (!r.ok()) {
    seq_.n_cached = int64_t(cached_ids_.size());  // entries past the cached ids are not trusted
    return r.error();
  }
  seq_.n_cached = start + int64_t(tokens.size());
  cached_ids_.insert(cached_ids_.end(), tokens.begin(), tokens.end());
  return {};
}

Result<Generation> Generator::generate(std::span<const int32_t> prompt, const GenerateParams& params,
                                       const TokenCallback& on_token) {
  const int64_t n_prompt = int64_t(prompt.size());
  if (n_prompt == 0) return make_error("the prompt is empty");
  if (n_prompt > max_context_)
    return make_error("the prompt has " + std::to_string(n_prompt) + " tokens, more than the context of " +
                      std::to_string(max_context_));

  // Reuse the longest common prefix, but prefill at least the last two prompt tokens: the last
  // one's logits start the decode, and a one-token forward would take the decode (absorbed) form,
  // whose rounding differs from prefill's, so a repeated prompt would not give what a cold run gives.
  const auto mismatch = std::mismatch(prompt.begin(), prompt.end(), cached_ids_.begin(), cached_ids_.end());
  const int64_t reused = std::min<int64_t>(mismatch.first - prompt.begin(), n_prompt - std::min<int64_t>(n_prompt, 2));
  cached_ids_.resize(size_t(reused));
  seq_.n_cached = reused;

  int64_t chunk = std::max<int64_t>(params.prefill_chunk, 1);
  for (int64_t pos = reused; pos < n_prompt;) {
    const int64_t take = std::min(chunk, n_prompt - pos);
    auto r = run(prompt.subspan(size_t(pos), size_t(take)));
    if (!r.ok() && r.error().out_of_memory && take > 2) {
      chunk = std::max<int64_t>(2, take / 2);  // the backend had not the memory for so many rows: halves
      continue;
    }
    if (!r.ok()) return r.error();
    pos += take;
  }

  Generation g;
  g.prompt_tokens = n_prompt;
  g.cached_tokens = reused;
  Sampler sampler(params.sampling);
  const int32_t eos = int32_t(model_->config().eos_token_id);
  const float masked = -std::numeric_limits<float>::infinity();
  while (int64_t(g.tokens.size()) < params.max_tokens) {
    for (int32_t id : params.masked_ids) logits_[size_t(id)] = masked;
    if (!has_candidate(logits_)) return no_candidate_error(int64_t(g.tokens.size()));
    const int32_t next = sampler.sample(logits_);
    g.tokens.push_back(next);
    if (params.top_logprobs >= 0) g.logprobs.push_back(step_logprobs(logits_, next, params.top_logprobs));
    const bool stop = on_token && on_token(next);
    if (next == eos) {
      g.hit_eos = true;
      break;
    }
    if (stop || int64_t(g.tokens.size()) >= params.max_tokens || seq_.n_cached >= max_context_) break;
    const int32_t one[1] = {next};
    auto r = run(one);
    if (!r.ok()) return r.error();
  }
  return g;
}

}  // namespace dsa
