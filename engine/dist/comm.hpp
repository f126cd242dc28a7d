// Comm: the collectives tensor- and expert-parallel execution needs (architecture.md "Scaling
// out"). Implementations: SingleComm (one rank, every collective is the identity) and thread ranks
// in one process (make_thread_comms), which CI uses to prove sharded runs equal one rank. Every
// rank must call each collective in the same order with the same sizes. Reductions sum in rank
// order, so every rank gets bit-identical results (top-k computed from them agrees on all ranks).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace dsa {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data[n] <- sum over ranks of data[n].
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  // out[size * n] <- the ranks' in[n], in rank order.
  virtual void all_gather(const float* in, int64_t n, float* out) = 0;
  // data[n] <- root's data[n].
  virtual void broadcast(float* data, int64_t n, int root) = 0;

  // all_reduce_sum and all_gather ordered on a CUDA stream (a cudaStream_t): enqueued after the
  // stream's work and returning at once, so a stream being captured into a CUDA graph captures
  // them. Device pointers only. A Comm of host memory (one rank, threads, sockets) makes the plain
  // call, as it does for a null stream.
  virtual void all_reduce_sum_on(float* data, int64_t n, void* /*stream*/) { all_reduce_sum(data, n); }
  virtual void all_gather_on(const float* in, int64_t n, float* out, void* /*stream*/) { all_gather(in, n, out); }
};

class SingleComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_gather(const float* in, int64_t n, float* out) override;
  void broadcast(float*, int64_t, int) override {}
};

// n_ranks communicators sharing one in-process group; rank r's is element r, to be used from its
// own thread.
std::vector<std::unique_ptr<Comm>> make_thread_comms(int n_ranks);

}  // namespace dsa
