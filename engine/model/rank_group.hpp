// RankGroup: one ForwardPass over n ranks in this process, one thread per rank (one GPU each, or
// CPU ranks in tests). Every call runs on all ranks at once: each rank's model computes its heads
// and experts and the ranks meet in their Comm's collectives (model.hpp "parallel layout"). Rank 0
// runs on the caller's thread and its logits are the result.
//
// Caches: make_cache() gives the pool in rank 0's memory with a mirror per other rank in that
// rank's memory; the caller's KvCache hands out the pages and every rank writes and reads the
// same page ids in its own mirror. Each rank works on its own copy of the sequences' page tables,
// so the caller's Sequence is only touched by rank 0.
#pragma once
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/dist/comm.hpp"
#include "engine/model/forward_pass.hpp"

namespace dsa {

class RankGroup final : public ForwardPass {
 public:
  // ranks[r] was loaded with comms[r] (rank r of comms.size()); all of one config.
  RankGroup(std::vector<std::unique_ptr<Comm>> comms, std::vector<std::unique_ptr<ForwardPass>> ranks);
  ~RankGroup() override;
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  const ModelConfig& config() const override { return ranks_[0]->config(); }
  // Reserves the pages in `cache` first (an error there changes nothing on any rank), then runs the
  // call on every rank. The ranks check the same inputs and meet in the same collectives, so they
  // fail or succeed together; rank 0's result is returned.
  Result<void> forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                       ForwardTrace* trace = nullptr) override;
  Result<void> forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs, std::span<const int32_t> tokens,
                                    float* logits, ForwardTrace* trace = nullptr) override;
  void set_phase_times(PhaseTimes* times) override { ranks_[0]->set_phase_times(times); }
  Backend* cache_memory() const override { return ranks_[0]->cache_memory(); }
  KvCache make_cache(cpu::LatentFormat format, int64_t n_pages) override;
  int size() const { return static_cast<int>(ranks_.size()); }

 private:
  // One forward call on every rank: rank 0 with the caller's cache, sequences and logits, rank r > 0
  // with its mirror, copies of the sequences and scratch logits (logit_rows rows). Rank 0's result.
  using RankCall = std::function<Result<void>(ForwardPass&, KvCache&, std::span<Sequence*>, float*, ForwardTrace*)>;
  Result<void> on_every_rank(KvCache& cache, std::span<Sequence* const> seqs, int64_t logit_rows, float* logits,
                             ForwardTrace* trace, const RankCall& call);
  // Runs job(r) for r = 1..n-1 on the rank threads and job(0) here; returns when all are done.
  void run_all(const std::function<void(int)>& job);
  void worker(int rank);

  std::vector<std::unique_ptr<Comm>> comms_;          // outlive the ranks' models
  std::vector<std::unique_ptr<ForwardPass>> ranks_;
  std::vector<std::unique_ptr<KvCache>> mirrors_;     // [cache][rank - 1], of every make_cache
  std::vector<float> scratch_;                        // the other ranks' logits, grown to the largest call
  std::vector<std::thread> threads_;                  // ranks 1..n-1
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace dsa
