#include "engine/model/rank_group.hpp"

#include <utility>

#include "engine/model/forward_checks.hpp"

namespace dsa {

RankGroup::RankGroup(std::vector<std::unique_ptr<Comm>> comms, std::vector<std::unique_ptr<ForwardPass>> ranks)
    : comms_(std::move(comms)), ranks_(std::move(ranks)) {
  DSA_CHECK(!ranks_.empty() && ranks_.size() == comms_.size(), "a RankGroup has one Comm per rank");
  for (int r = 1; r < size(); ++r) threads_.emplace_back([this, r] { worker(r); });
}

RankGroup::~RankGroup() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void RankGroup::worker(int rank) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job = nullptr;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(rank);
    {
      std::lock_guard lock(mu_);
      if (--pending_ == 0) done_.notify_all();
    }
  }
}

void RankGroup::run_all(const std::function<void(int)>& job) {
  {
    std::lock_guard lock(mu_);
    job_ = &job;
    pending_ = size() - 1;
    ++generation_;
  }
  wake_.notify_all();
  job(0);
  std::unique_lock lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

KvCache RankGroup::make_cache(cpu::LatentFormat format, int64_t n_pages) {
  KvCache cache = ranks_[0]->make_cache(format, n_pages);
  for (int r = 1; r < size(); ++r) {
    mirrors_.push_back(std::make_unique<KvCache>(ranks_[r]->make_cache(format, n_pages)));
    cache.add_mirror(*mirrors_.back());
  }
  return cache;
}

Result<void> RankGroup::on_every_rank(KvCache& cache, std::span<Sequence* const> seqs, int64_t logit_rows,
                                      float* logits, ForwardTrace* trace, const RankCall& call) {
  const int n = size();
  const auto vocab = static_cast<size_t>(config().vocab_size);
  std::vector<Result<void>> results(static_cast<size_t>(n), Result<void>{});
  // Ranks r > 0 work on copies of the sequences (their page tables), into scratch logits.
  std::vector<std::vector<Sequence>> copies(static_cast<size_t>(n));
  std::vector<std::vector<Sequence*>> rows(static_cast<size_t>(n));
  rows[0].assign(seqs.begin(), seqs.end());
  for (int r = 1; r < n; ++r) {
    for (Sequence* s : seqs) copies[size_t(r)].push_back(*s);
    for (Sequence& s : copies[size_t(r)]) rows[size_t(r)].push_back(&s);
  }
  scratch_.resize(static_cast<size_t>(n - 1) * static_cast<size_t>(logit_rows) * vocab);
  const std::function<void(int)> job = [&](int r) {
    if (r == 0) {
      results[0] = call(*ranks_[0], cache, rows[0], logits, trace);
      return;
    }
    ForwardTrace local;  // the forced selections apply on every rank; the record is rank 0's
    if (trace) local.forced_topk = trace->forced_topk;
    results[size_t(r)] = call(*ranks_[size_t(r)], cache.mirror(size_t(r - 1)), rows[size_t(r)],
                              scratch_.data() + size_t(r - 1) * size_t(logit_rows) * vocab, trace ? &local : nullptr);
  };
  run_all(job);
  // The ranks fail together (ForwardPass's contract); should one fail alone, its error is not lost.
  for (Result<void>& r : results)
    if (!r) return r;
  return results[0];
}

Result<void> RankGroup::forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                                ForwardTrace* trace) {
  DSA_CHECK(static_cast<int>(cache.n_mirrors()) == size() - 1, "the cache comes from this group's make_cache");
  if (tokens.empty()) return make_error("forward: no tokens");
  if (auto r = check_tokens(tokens, config().vocab_size); !r) return r.error();
  const int64_t end = seq.n_cached + static_cast<int64_t>(tokens.size());
  if (auto r = check_position(end, config().max_position_embeddings); !r) return r.error();
  if (auto r = cache.reserve(seq, end); !r) return r.error();
  Sequence* one[] = {&seq};
  return on_every_rank(cache, one, 1, logits, trace,
                       [&](ForwardPass& m, KvCache& c, std::span<Sequence*> s, float* out, ForwardTrace* t) {
                         return m.forward(c, *s[0], tokens, out, t);
                       });
}

Result<void> RankGroup::forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs,
                                             std::span<const int32_t> tokens, float* logits, ForwardTrace* trace) {
  DSA_CHECK(static_cast<int>(cache.n_mirrors()) == size() - 1, "the cache comes from this group's make_cache");
  if (auto r = check_decode_batch(seqs, tokens, config()); !r) return r.error();
  for (Sequence* s : seqs) {
    if (auto r = cache.reserve(*s, s->n_cached + 1); !r) return r.error();
  }
  return on_every_rank(cache, seqs, static_cast<int64_t>(seqs.size()), logits, trace,
                       [&](ForwardPass& m, KvCache& c, std::span<Sequence*> s, float* out, ForwardTrace* t) {
                         return m.forward_decode_batch(c, s, tokens, out, t);
                       });
}

}  // namespace dsa
