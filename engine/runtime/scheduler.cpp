// BatchScheduler (scheduler.hpp). Requests live in their callers' frames (generate blocks until
// done is set); the engine thread alone touches waiting_, running_, slots_ and the caches, and sets
// done only after a step, so no request is freed while a step may still look at it.
#include "engine/runtime/scheduler.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "kernels/cpu/parallel.hpp"

namespace dsa {

namespace {

int64_t pages_for(int64_t n_tokens) { return (n_tokens + kPageTokens - 1) / kPageTokens; }

// The smallest prefill budget: a chunk of at least two ids that leaves no one-id remainder.
constexpr int64_t kMinChunk = 3;

// Tokens of a run of chunk positions to forward now: at most budget, at least two (one token
// alone takes the decode form), never leaving a one-token remainder. 0: wait for the next step.
int64_t chunk_len(int64_t run, int64_t budget) {
  if (run <= budget) return run;
  const int64_t take = run - budget == 1 ? budget - 1 : budget;
  return take >= 2 ? take : 0;
}

const SchedulerOptions& checked(const SchedulerOptions& o) {
  DSA_CHECK(o.max_context > 0 && o.pool_tokens > 0 && o.n_slots > 0);
  DSA_CHECK(o.prefill_chunk >= kMinChunk, "chunks of two or more tokens that leave no one-token remainder need 3");
  return o;
}

}  // namespace

struct BatchScheduler::Request {
  enum class State { waiting, running, finished };

  Request(std::span<const int32_t> prompt, const GenerateParams& p, const TokenCallback& cb)
      : params(p),
        on_token(cb),
        sampler(p.sampling),
        ids(prompt.begin(), prompt.end()),
        single(prompt.size(), 0),
        n_prompt(int64_t(prompt.size())) {}

  GenerateParams params;
  const TokenCallback& on_token;
  Sampler sampler;
  // The prompt, then each generated id that is to be forwarded: every id must be cached before the
  // next sample, which reads the last one's logits.
  std::vector<int32_t> ids;
  // Per id: forwarded alone (1) or in a chunk (0). Generated ids are forwarded alone; prompt ids
  // take the flags of the slot prefix they reuse, and are chunks after it.
  std::vector<uint8_t> single;
  int64_t n_prompt;
  State state = State::waiting;
  bool admitted = false;  // cached_tokens counts the first admission's reuse
  Slot* slot = nullptr;   // while running
  Generation result;
  std::optional<Error> error;
  bool done = false;  // guarded by mu_
};

struct BatchScheduler::Slot {
  Sequence seq;
  std::vector<int32_t> ids;     // while idle: the ids whose entries seq holds
  std::vector<uint8_t> single;  // and how each was forwarded
  Request* owner = nullptr;
  uint64_t last_used = 0;

  // The ids whose entries seq holds, and their flags, idle or running (a running request only
  // appends, so its cached entries can be copied between steps).
  std::span<const int32_t> cached_ids() const {
    return owner ? std::span<const int32_t>(owner->ids).first(size_t(seq.n_cached)) : std::span<const int32_t>(ids);
  }
  std::span<const uint8_t> cached_single() const {
    return owner ? std::span<const uint8_t>(owner->single).first(size_t(seq.n_cached))
                 : std::span<const uint8_t>(single);
  }
};

BatchScheduler::BatchScheduler(std::unique_ptr<ForwardPass> model, cpu::LatentFormat latent_format,
                               const SchedulerOptions& options)
    : model_(std::move(model)),
      options_(checked(options)),
      cache_(model_->make_cache(latent_format, pages_for(options.pool_tokens))),
      logits_(size_t(model_->config().vocab_size)),
      prefill_chunk_(options.prefill_chunk),
      engine_([this] { engine_main(); }) {}

BatchScheduler::~BatchScheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  engine_.join();
}

Result<Generation> BatchScheduler::generate(std::span<const int32_t> prompt, const GenerateParams& params,
                                            const TokenCallback& on_token) {
  const int64_t n_prompt = int64_t(prompt.size());
  if (n_prompt == 0) return make_error("the prompt is empty");
  if (n_prompt > options_.max_context)
    return make_error("the prompt has " + std::to_string(n_prompt) + " tokens, more than the context of " +
                      std::to_string(options_.max_context));
  Request r(prompt, params, on_token);
  std::unique_lock lock(mu_);
  incoming_.push_back(&r);
  wake_.notify_one();
  done_.wait(lock, [&] { return r.done; });
  if (r.error) return *r.error;
  return std::move(r.result);
}

void BatchScheduler::engine_main() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !incoming_.empty() || !waiting_.empty() || !running_.empty(); });
    if (stop_) break;
    waiting_.insert(waiting_.end(), incoming_.begin(), incoming_.end());
    incoming_.clear();
    lock.unlock();
    step();
    lock.lock();
    if (finished_.empty()) continue;
    for (Request* r : finished_) r->done = true;
    finished_.clear();
    done_.notify_all();
  }
  for (auto* queue : {&incoming_, &waiting_}) running_.insert(running_.end(), queue->begin(), queue->end());
  for (Request* r : running_) {
    r->error = make_error("the engine stopped before the request ended");
    r->done = true;
  }
  done_.notify_all();
}

void BatchScheduler::step() {
  admit();
  prefill();
  decode();
  ++clock_;
}

int64_t BatchScheduler::usable_prefix(const Request& r, const Slot& slot) const {
  const std::span<const int32_t> ids = slot.cached_ids();
  const std::span<const uint8_t> single = slot.cached_single();
  const int64_t n = int64_t(r.ids.size());
  const int64_t common = std::min(n, int64_t(ids.size()));
  int64_t m = 0;
  // Prompt ids are reused however they were forwarded (as the Generator does); generated ids only
  // where they were forwarded alone, as r forwards them.
  while (m < common && r.ids[m] == ids[m] && (m < r.n_prompt || single[m])) ++m;
  // The last id's logits come from a forward: the last two prompt ids as a chunk, or the last
  // generated id alone; and prompt ids after the prefix form a chunk of at least two.
  m = std::min(m, n - (n > r.n_prompt ? 1 : 2));
  if (m == r.n_prompt - 1) --m;
  return std::max<int64_t>(m, 0);
}

bool BatchScheduler::free_idle_pages(int64_t n_pages, const Slot* keep) {
  while (cache_.free_pages() < n_pages) {
    auto lru = slots_.end();
    for (auto it = slots_.begin(); it != slots_.end(); ++it) {
      if ((*it)->owner || it->get() == keep) continue;
      if (lru == slots_.end() || (*it)->last_used < (*lru)->last_used) lru = it;
    }
    if (lru == slots_.end()) return false;
    cache_.release((*lru)->seq);
    slots_.erase(lru);
  }
  return true;
}

void BatchScheduler::admit() {
  while (!waiting_.empty()) {
    Request& r = *waiting_.front();
    const int64_t n = int64_t(r.ids.size());
    const int64_t need = pages_for(n);
    if (need > cache_.n_pages()) {
      waiting_.pop_front();
      fail(r, make_error("the request needs the cache of " + std::to_string(n) + " tokens, more than the pool's " +
                         std::to_string(cache_.n_pages() * kPageTokens)));
      continue;
    }
    // The slot sharing the longest usable prefix, and the pages free or held by idle slots.
    Slot* best = nullptr;
    Slot* lru = nullptr;
    int64_t reuse = 0;
    int64_t available = cache_.free_pages();
    for (auto& s : slots_) {
      if (!s->owner) {
        available += int64_t(s->seq.pages.size());
        if (!lru || s->last_used < lru->last_used) lru = s.get();
      }
      const int64_t m = usable_prefix(r, *s);
      if (m > reuse) {
        best = s.get();
        reuse = m;
      }
    }
    // Pages for all its ids, with one spare page per running request so that their next page
    // boundaries do not preempt it at once; else the queue waits (FIFO).
    const int64_t spare = int64_t(running_.size());
    if (need + spare > available) return;
    // A request that continues an idle slot's whole conversation takes the slot. One that shares
    // only a part of it (another conversation with the same system prompt, a retry), or shares a
    // running slot's, gets a copy of that part in a new slot while there is room, so the slot's own
    // conversation can still continue.
    const bool room = int64_t(slots_.size()) < options_.n_slots;
    const bool idle_best = best && !best->owner;
    Slot* slot = nullptr;
    Slot* source = nullptr;
    if (idle_best && (reuse == int64_t(best->ids.size()) || !room ||
                      need + spare + int64_t(best->seq.pages.size()) > available)) {
      slot = best;
    } else if (room) {
      source = best;
      slot = slots_.emplace_back(std::make_unique<Slot>()).get();
    } else if (lru) {
      slot = lru;
      reuse = 0;
    } else {
      return;  // every slot runs a request
    }
    slot->owner = &r;  // before freeing idle pages: it is not idle
    if (!source) {
      cache_.truncate(slot->seq, reuse);
      slot->ids.resize(size_t(reuse));
      slot->single.resize(size_t(reuse));
    }
    DSA_CHECK(free_idle_pages(need - int64_t(slot->seq.pages.size()), source));
    DSA_CHECK(cache_.reserve(slot->seq, n).ok());
    if (source) {
      cache_.copy_prefix(source->seq, slot->seq, reuse);
      const auto ids = source->cached_ids().first(size_t(reuse));
      const auto single = source->cached_single().first(size_t(reuse));
      slot->ids.assign(ids.begin(), ids.end());
      slot->single.assign(single.begin(), single.end());
    }
    std::copy(slot->single.begin(), slot->single.end(), r.single.begin());
    std::fill(r.single.begin() + reuse, r.single.begin() + std::max(reuse, r.n_prompt), uint8_t(0));
    if (!r.admitted) r.result.cached_tokens = reuse;
    r.admitted = true;
    r.result.prompt_tokens = r.n_prompt;
    r.slot = slot;
    r.state = Request::State::running;
    running_.push_back(&r);
    if (int64_t(running_.size()) > peak_running_.load(std::memory_order_relaxed))
      peak_running_.store(int64_t(running_.size()), std::memory_order_relaxed);
    waiting_.pop_front();
  }
}

void BatchScheduler::prefill() {
  int64_t budget = prefill_chunk_.load(std::memory_order_relaxed);
  const std::vector<Request*> order = running_;  // fail() edits running_
  for (Request* r : order) {
    Sequence& seq = r->slot->seq;
    const int64_t c = seq.n_cached, n = int64_t(r->ids.size());
    if (r->single[c]) continue;
    int64_t run = 1;
    while (c + run < n && !r->single[c + run]) ++run;
    if (run == 1) {  // a one-token prompt: forwarded alone, with the decodes
      r->single[c] = 1;
      continue;
    }
    const int64_t take = chunk_len(run, budget);
    if (take == 0) continue;
    budget -= take;
    auto fwd = model_->forward(cache_, seq, std::span(r->ids).subspan(size_t(c), size_t(take)), logits_.data());
    if (!fwd.ok() && fwd.error().out_of_memory && take > kMinChunk) {
      // The backend had not the memory for this many rows: every later step forwards half as many
      // (the request keeps its place and retries next step).
      prefill_chunk_.store(std::max(kMinChunk, take / 2), std::memory_order_relaxed);
      return;
    }
    if (!fwd.ok()) {
      fail(*r, fwd.error());
    } else if (c + take == n) {
      sample(*r, logits_.data());
    }
  }
}

bool BatchScheduler::grow(Request& r, int64_t n_tokens) {
  Sequence& seq = r.slot->seq;
  const int64_t extra = pages_for(n_tokens) - int64_t(seq.pages.size());
  while (!free_idle_pages(extra, nullptr)) {
    // Preempt the most recently admitted request: r's elders keep going, and FIFO brings it back.
    Request& victim = *running_.back();
    if (&victim == &r && running_.size() == 1) {
      fail(r, make_error("the request needs the cache of " + std::to_string(n_tokens) +
                         " tokens, more than the pool's " + std::to_string(cache_.n_pages() * kPageTokens)));
      return false;
    }
    preempt(victim);
    if (&victim == &r) return false;
  }
  DSA_CHECK(cache_.reserve(seq, n_tokens).ok());
  return true;
}

void BatchScheduler::preempt(Request& r) {
  preemptions_.fetch_add(1, std::memory_order_relaxed);
  cache_.release(r.slot->seq);
  std::erase_if(slots_, [&](const std::unique_ptr<Slot>& s) { return s.get() == r.slot; });
  r.slot = nullptr;
  r.state = Request::State::waiting;
  std::erase(running_, &r);
  waiting_.push_front(&r);
}

void BatchScheduler::decode() {
  std::vector<Request*> rows;
  std::vector<Sequence*> seqs;
  std::vector<int32_t> tokens;
  const std::vector<Request*> order = running_;  // grow() preempts only requests after the current one
  for (Request* r : order) {
    if (r->state != Request::State::running) continue;
    const int64_t c = r->slot->seq.n_cached;
    if (!r->single[c] || !grow(*r, c + 1)) continue;
    rows.push_back(r);
    seqs.push_back(&r->slot->seq);
    tokens.push_back(r->ids[size_t(c)]);
  }
  if (rows.empty()) return;
  const int64_t vocab = model_->config().vocab_size;
  if (logits_.size() < rows.size() * size_t(vocab)) logits_.resize(rows.size() * size_t(vocab));
  if (!model_->forward_decode_batch(cache_, seqs, tokens, logits_.data()).ok()) {
    // Find the rows at fault: one row alone gives what it gives in the batch.
    for (size_t b = 0; b < rows.size(); ++b) {
      auto one = model_->forward(cache_, *seqs[b], std::span(tokens).subspan(b, 1), logits_.data() + b * vocab);
      if (one.ok()) continue;
      fail(*rows[b], one.error());
      rows[b] = nullptr;
    }
  }
  // Each row whose prompt is all forwarded draws its next id: the draws in parallel (a nucleus draw
  // over a large vocabulary takes milliseconds), then the ids are taken in row order.
  std::vector<Draw> draws(rows.size());
  const auto forwarded = [&](size_t b) {
    const Request* r = rows[b];
    return r && r->slot->seq.n_cached == int64_t(r->ids.size());
  };
  cpu::parallel_for(int64_t(rows.size()), [&](int64_t begin, int64_t end) {
    for (auto b = size_t(begin); b < size_t(end); ++b)
      if (forwarded(b) && wants_token(*rows[b])) draws[b] = draw(*rows[b], logits_.data() + b * vocab);
  });
  for (size_t b = 0; b < rows.size(); ++b) {
    if (!forwarded(b)) continue;
    if (wants_token(*rows[b])) {
      accept(*rows[b], std::move(draws[b]));
    } else {
      finish(*rows[b]);
    }
  }
}

void BatchScheduler::sample(Request& r, float* logits) {
  if (!wants_token(r)) return finish(r);
  accept(r, draw(r, logits));
}

bool BatchScheduler::wants_token(const Request& r) const {
  return int64_t(r.result.tokens.size()) < r.params.max_tokens;
}

BatchScheduler::Draw BatchScheduler::draw(Request& r, float* logits) const {
  for (int32_t id : r.params.masked_ids) logits[id] = -std::numeric_limits<float>::infinity();
  const std::span<const float> row(logits, size_t(model_->config().vocab_size));
  if (!has_candidate(row)) return Draw{.id = -1, .logprobs = std::nullopt};
  Draw d{.id = r.sampler.sample(row), .logprobs = std::nullopt};
  if (r.params.top_logprobs >= 0) d.logprobs = step_logprobs(row, d.id, r.params.top_logprobs);
  return d;
}

void BatchScheduler::accept(Request& r, Draw d) {
  Generation& g = r.result;
  if (d.id < 0) return fail(r, no_candidate_error(int64_t(g.tokens.size())));
  const int32_t next = d.id;
  g.tokens.push_back(next);
  if (d.logprobs) g.logprobs.push_back(std::move(*d.logprobs));
  bool stop = false;
  if (r.on_token) {
    try {
      stop = r.on_token(next);
    } catch (const std::exception& e) {
      return fail(r, make_error(std::string("the token callback failed: ") + e.what()));
    }
  }
  if (next == int32_t(model_->config().eos_token_id)) {
    g.hit_eos = true;
    return finish(r);
  }
  if (stop || int64_t(g.tokens.size()) >= r.params.max_tokens || r.slot->seq.n_cached >= options_.max_context)
    return finish(r);
  r.ids.push_back(next);
  r.single.push_back(1);
}

void BatchScheduler::finish(Request& r) {
  if (Slot* slot = r.slot) {
    const auto n_cached = size_t(slot->seq.n_cached);
    slot->ids.assign(r.ids.begin(), r.ids.begin() + n_cached);
    slot->single.assign(r.single.begin(), r.single.begin() + n_cached);
    slot->owner = nullptr;
    slot->last_used = clock_;
    r.slot = nullptr;
    std::erase(running_, &r);
  }
  r.state = Request::State::finished;
  finished_.push_back(&r);
}

void BatchScheduler::fail(Request& r, Error error) {
  r.error = std::move(error);
  finish(r);
}

}  // namespace dsa
