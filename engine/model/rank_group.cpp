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

Result<void> RankGroup::forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                                ForwardTrace* trace) {
  DSA_CHECK(static_cast<int>(cache.n_mirrors()) == size() - 1, "the cache comes from this group's make_cache");
  if (tokens.empty()) return make_error("forward: no tokens");
  if (auto r = check_tokens(tokens, config().vocab_size); !r) return r.error();
  const int64_t end = seq.n_cached + static_cast<int64_t>(tokens.size());
  if (auto r = check_position(end, config().max_position_embeddings); !r) return r.error();
  if (auto r = cache.reserve(seq, end); !r) return r.error();
  std::vector<Result<void>> results(static_cast<size_t>(size()), Result<void>{});
  std::vector<Sequence> copies(static_cast<size_t>(size()), seq);
  std::vector<float> scratch(static_cast<size_t>((size() - 1) * config().vocab_size));
  const std::function<void(int)> job = [&](int r) {
    if (r == 0) {
      results[0] = ranks_[0]->forward(cache, seq, tokens, logits, trace);
      return;
    }
    ForwardTrace local;
    if (trace) local.forced_topk = trace->forced_topk;
    results[size_t(r)] = ranks_[size_t(r)]->forward(cache.mirror(size_t(r - 1)), copies[size_t(r)], tokens,
                                                    scratch.data() + (r - 1) * config().vocab_size,
                                                    trace ? &local : nullptr);
  };
  run_all(job);
  return results[0];
}

Result<void> RankGroup::forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs,
                                             std::span<const int32_t> tokens, float* logits, ForwardTrace* trace) {
  DSA_CHECK(static_cast<int>(cache.n_mirrors()) == size() - 1, "the cache comes from this group's make_cache");
  if (auto r = check_decode_batch(seqs, tokens, config()); !r) return r.error();
  for (Sequence* s : seqs) {
    if (auto r = cache.reserve(*s, s->n_cached + 1); !r) return r.error();
  }
  const int64_t B = static_cast<int64_t>(seqs.size());
  std::vector<Result<void>> results(static_cast<size_t>(size()), Result<void>{});
  // Rank r > 0 decodes copies of the sequences.
  std::vector<std::vector<Sequence>> copies(static_cast<size_t>(size()));
  std::vector<std::vector<Sequence*>> rows(static_cast<size_t>(size()));
  for (int r = 1; r < size(); ++r) {
    for (Sequence* s : seqs) copies[size_t(r)].push_back(*s);
    for (Sequence& s : copies[size_t(r)]) rows[size_t(r)].push_back(&s);
  }
  std::vector<float> scratch(static_cast<size_t>((size() - 1) * B * config().vocab_size));
  const std::function<void(int)> job = [&](int r) {
    if (r == 0) {
      results[0] = ranks_[0]->forward_decode_batch(cache, seqs, tokens, logits, trace);
      return;
    }
    ForwardTrace local;
    if (trace) local.forced_topk = trace->forced_topk;
    results[size_t(r)] = ranks_[size_t(r)]->forward_decode_batch(
        cache.mirror(size_t(r - 1)), rows[size_t(r)], tokens, scratch.data() + (r - 1) * B * config().vocab_size,
        trace ? &local : nullptr);
  };
  run_all(job);
  return results[0];
}

}  // namespace dsa
