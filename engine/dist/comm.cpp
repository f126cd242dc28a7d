// SingleComm and the in-process thread-rank Comm (see comm.hpp). Ranks publish a pointer to their
// buffer, meet at a barrier, read each other's buffers, and meet again before anyone may reuse them.
#include "engine/dist/comm.hpp"

#include <algorithm>
#include <barrier>

#include "engine/api/result.hpp"

namespace dsa {

void SingleComm::all_gather(const float* in, int64_t n, float* out) { std::copy_n(in, n, out); }

namespace {

struct ThreadGroup {
  explicit ThreadGroup(int n) : n_ranks(n), sync(n), published(n, nullptr), scratch(n) {}
  int n_ranks;
  std::barrier<> sync;
  std::vector<const float*> published;      // [rank] buffer of the collective in progress
  std::vector<std::vector<float>> scratch;  // [rank] reduction result before it overwrites data
};

class ThreadComm final : public Comm {
 public:
  ThreadComm(std::shared_ptr<ThreadGroup> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->n_ranks; }

  void all_reduce_sum(float* data, int64_t n) override {
    g_->published[rank_] = data;
    g_->sync.arrive_and_wait();
    auto& sum = g_->scratch[rank_];
    sum.assign(g_->published[0], g_->published[0] + n);
    for (int r = 1; r < g_->n_ranks; ++r)
      for (int64_t i = 0; i < n; ++i) sum[i] += g_->published[r][i];
    g_->sync.arrive_and_wait();  // everyone has read every input
    std::copy_n(sum.data(), n, data);
  }

  void all_gather(const float* in, int64_t n, float* out) override {
    g_->published[rank_] = in;
    g_->sync.arrive_and_wait();
    for (int r = 0; r < g_->n_ranks; ++r) std::copy_n(g_->published[r], n, out + r * n);
    g_->sync.arrive_and_wait();
  }

  void broadcast(float* data, int64_t n, int root) override {
    DSA_CHECK(root >= 0 && root < g_->n_ranks, "broadcast root out of range");
    g_->published[rank_] = data;
    g_->sync.arrive_and_wait();
    if (rank_ != root) std::copy_n(g_->published[root], n, data);
    g_->sync.arrive_and_wait();
  }

 private:
  std::shared_ptr<ThreadGroup> g_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Comm>> make_thread_comms(int n_ranks) {
  DSA_CHECK(n_ranks >= 1, "a thread group needs at least one rank");
  auto group = std::make_shared<ThreadGroup>(n_ranks);
  std::vector<std::unique_ptr<Comm>> comms;
  for (int r = 0; r < n_ranks; ++r) comms.push_back(std::make_unique<ThreadComm>(group, r));
  return comms;
}

}  // namespace dsa
