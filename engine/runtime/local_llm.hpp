// LocalLlm: the Llm interface on the in-process engine. messages -> chat encoder -> token ids
// (template pieces with special tokens allowed, message text without) -> BatchScheduler (prefix
// cache slots, chunked prefill, batched decode) -> streaming detokenisation -> DSML parser ->
// AssistantTurn with usage. Ids below the model's vocab_size that have no token are never sampled.
// The latent cache format is default_latent_format (generator.hpp); the page pool holds one
// max_context, shared by all requests (scheduler.hpp says what happens when it runs short).
// Thread-safe: concurrent generate() and complete() calls share the engine's steps, each streaming
// and parsing its own reply.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "engine/api/llm.hpp"
#include "engine/model/forward_pass.hpp"
#include "engine/model/open_model.hpp"
#include "engine/runtime/generator.hpp"
#include "engine/runtime/scheduler.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace dsa {

class LocalLlm final : public Llm {
 public:
  // DIR holds config.json, the safetensors and tokenizer.json; max_context bounds one request.
  // The cache pool holds `concurrency` requests of max_context tokens at once (its memory is
  // committed as pages are used); more concurrent requests than that share it, and the newest wait
  // when it runs short. engine: the device and the ranks (open_model); its attention, context and
  // sequences come from the other arguments.
  static Result<std::unique_ptr<LocalLlm>> open(const std::filesystem::path& dir, AttentionMode mode,
                                                int64_t max_context, int64_t concurrency = 1,
                                                OpenOptions engine = {});
  LocalLlm(std::string name, Tokenizer tokenizer, std::unique_ptr<ForwardPass> model, int64_t max_context,
           int64_t concurrency = 1);

  // Since opening: requests sent back to wait because the cache pool ran short, and the most
  // requests that ran at once.
  int64_t preemptions() const { return scheduler_->preemptions(); }
  int64_t peak_running() const { return scheduler_->peak_running(); }

  Result<AssistantTurn> generate(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                                 const GenOptions& options, StreamSink* sink) override;
  int64_t count_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking) override;
  ModelInfo info() override;

  // Raw completion of already-tokenised text (no chat template, no parsing): `dsagent generate --raw`.
  Result<Generation> complete(std::span<const int32_t> prompt, const GenerateParams& params,
                              const std::function<void(std::string_view text)>& on_text);
  const Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  std::vector<int32_t> encode(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking) const;
  GenerateParams params_from(const GenOptions& options) const;

  std::string name_;
  Tokenizer tokenizer_;
  std::unique_ptr<BatchScheduler> scheduler_;  // owns the model; its engine thread runs until destruction
  std::vector<int32_t> masked_ids_;  // ids < vocab_size with no token
  int32_t think_end_id_;             // "</think>", -1 when the tokenizer has none
};

}  // namespace dsa
