// BatchScheduler: continuous batching of many requests on one Model and one KvCache page pool.
// generate() may be called from many threads at once; each call blocks until its request ends and
// returns what a Generator (generator.hpp) returns for that request alone: the same ids for greedy
// or seeded sampling, prompt_tokens, cached_tokens, hit_eos, and the same stopping rules.
//
// One engine thread runs steps. A step admits waiting requests in arrival order while a slot and
// the pages of their ids are free, forwards prefill chunks (at most prefill_chunk tokens per step
// over all requests, oldest first, so a long prompt does not stall the decodes), then runs one
// forward_decode_batch over every sequence with a token to forward, and samples each request that
// has new logits with its own Sampler. Token callbacks run on the engine thread: keep them short,
// and never call generate() from one.
//
// Prefix reuse, like llama.cpp's server slots: up to n_slots sequences (running or idle) keep their
// cached ids; a new request reuses the slot sharing the longest prefix with its ids (reported as
// cached_tokens) and forwards only the rest, so an agent loop that extends one conversation
// prefills only the new tokens. It takes an idle slot whose whole conversation it continues;
// otherwise (another conversation with the same system prompt, or a slot still running) the shared
// part is copied into a new slot while there is room, so concurrent conversations neither evict
// each other nor prefill their common prompt again. As in the Generator, at least the last two
// prompt tokens are forwarded again.
//
// Pages: a request's ids get their pages at admission and it grows a page at a time while decoding.
// When the pool runs short, idle slots are freed (least recently used first), then the most
// recently admitted running request is preempted: its pages go back to the pool and it waits at
// the head of the queue to be recomputed from its prompt and the ids it has produced. A request
// that cannot fit the pool even alone ends with an error; errors reach only their request.
//
// Exactness: a position's cache entries depend on how it was forwarded, in a chunk (the MHA form)
// or alone (the absorbed decode form, whose rounding differs). Slots record which. A request's
// prompt is forwarded in chunks of at least two after the prefix it reuses (chunk boundaries do
// not change the results), its generated ids one at a time, and a recomputation after preemption
// does the same, replaying the generated ids one per step with the decodes; so batching and
// preemption change no request's output. (Only where a preempted request had reused generated ids
// of an earlier request as prompt ids can the recomputed prompt round as a cold run does instead,
// the same difference as between the Generator's warm and cold runs. And the Generator forwards
// a one-token remainder of a chunked prompt alone, so for prompts of k * 512 + 1 ids the two differ.)
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/model/forward_pass.hpp"
#include "engine/runtime/generator.hpp"
#include "engine/runtime/kv_cache.hpp"

namespace dsa {

struct SchedulerOptions {
  int64_t max_context = 4096;   // prompt + generated tokens of one request, as the Generator's
  int64_t pool_tokens = 4096;   // the shared page pool (rounded up to whole pages)
  int64_t n_slots = 16;         // sequences kept, running or idle: at most this many requests run at once
  int64_t prefill_chunk = 512;  // prompt tokens forwarded per step, all requests together; >= 3
};

class BatchScheduler {
 public:
  BatchScheduler(std::unique_ptr<ForwardPass> model, cpu::LatentFormat latent_format, const SchedulerOptions& options);
  ~BatchScheduler();  // stops the engine thread; requests still queued end with an error
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // As Generator::generate, from any thread; on_token runs on the engine thread. params.prefill_chunk
  // is not used: chunks follow SchedulerOptions::prefill_chunk.
  Result<Generation> generate(std::span<const int32_t> prompt, const GenerateParams& params,
                              const TokenCallback& on_token);

  const ForwardPass& model() const { return *model_; }
  int64_t max_context() const { return options_.max_context; }
  // Since the start: requests sent back to wait because the page pool ran short, and the most
  // requests that ran in one step.
  int64_t preemptions() const { return preemptions_.load(std::memory_order_relaxed); }
  int64_t peak_running() const { return peak_running_.load(std::memory_order_relaxed); }
  // Prompt tokens forwarded per step now: options.prefill_chunk, halved each time a chunk did not fit
  // the backend's memory (the chunk is retried smaller instead of failing its request), at least 3.
  int64_t prefill_chunk() const { return prefill_chunk_.load(std::memory_order_relaxed); }

 private:
  struct Request;
  struct Slot;

  void engine_main();
  void step();
  void admit();
  void prefill();
  void decode();
  // The ids of slot's cache that r can keep: a prefix forwarded the way r needs it.
  int64_t usable_prefix(const Request& r, const Slot& slot) const;
  // Frees idle slots (least recently used first, never `keep`) until n_pages pages are free.
  bool free_idle_pages(int64_t n_pages, const Slot* keep);
  // Gives r's sequence the pages of n_tokens, preempting newer requests (or r itself) if needed.
  // False when r did not get them (preempted or failed).
  bool grow(Request& r, int64_t n_tokens);
  void preempt(Request& r);
  // The next id drawn from a request's logits, with its log-probabilities when asked for.
  struct Draw {
    int32_t id = 0;  // -1: nothing to draw (has_candidate)
    std::optional<StepLogprobs> logprobs;
  };
  // Samples r's next id from the logits of its last id (or ends it); runs its callback.
  void sample(Request& r, float* logits);
  // The parts of sample: whether r has tokens left to draw; the draw, which touches only r's sampler
  // and its logits (masked ids set to -inf), so the rows of a step draw in parallel; and taking the
  // drawn id (recorded, r's callback run, r ended where it stops).
  bool wants_token(const Request& r) const;
  Draw draw(Request& r, float* logits) const;
  void accept(Request& r, Draw d);
  void finish(Request& r);
  void fail(Request& r, Error error);

  std::unique_ptr<ForwardPass> model_;
  SchedulerOptions options_;
  KvCache cache_;

  // Engine-thread state.
  std::deque<Request*> waiting_;   // arrival order; preempted requests go back to the front
  std::vector<Request*> running_;  // admission order
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Request*> finished_;  // ended this step; their callers are woken after it
  std::vector<float> logits_;
  uint64_t clock_ = 0;  // step count: slot recency
  std::atomic<int64_t> preemptions_{0}, peak_running_{0}, prefill_chunk_{0};

  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::deque<Request*> incoming_;  // guarded by mu_
  bool stop_ = false;              // guarded by mu_
  std::thread engine_;             // last: starts once everything above exists
};

}  // namespace dsa
