// Ranks in separate processes (architecture.md "Scaling out": one process per GPU). This process
// is rank 0 and runs the caller's calls; ranks 1..n-1 are processes running `rank-worker`, joined
// to rank 0 by a SocketGroup. Before each call rank 0 sends every worker what it is: a forward
// pass (the tokens, the sequences' positions and page tables), or a cache pool to make, copy a
// prefix in, or drop. Every rank then runs it on its own share of the model and its own copy of
// the pool (same page ids; rank 0's pool hands the pages out), meeting in the Comm's collectives:
// the socket Comm for CPU ranks, NCCL for GPUs. The results are rank 0's.
//
// A worker that fails to start or load makes opening fail with its one-line error. A worker that
// dies while the group runs stops rank 0 with one line naming it (a group missing a rank cannot
// compute); a worker whose rank 0 goes away ends.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/dist/socket_group.hpp"
#include "engine/model/forward_pass.hpp"
#include "engine/model/open_model.hpp"

namespace dsa {

// Rank 0's side: listens (options.rank_address), starts the workers of this machine (ranks
// 1..local_ranks-1: `program rank-worker --connect ADDRESS --token T --rank r --ranks n`), waits for every
// rank (those of other machines started by hand), sends them the model and options, loads its own
// share, and returns the group once every rank has loaded. CPU ranks each get DSA_THREADS = cores /
// local ranks unless it is set.
Result<std::unique_ptr<ForwardPass>> open_rank_processes(const std::filesystem::path& dir, const OpenOptions& options);

// A worker's side (`dsagent rank-worker`): connects to rank 0 at address (a socket path or
// HOST:PORT; tried for up to a minute) with rank 0's token, receives the model and options, loads its share on GPU
// `gpu` (-1: the one numbered as its rank), reports, then serves rank 0's calls until rank 0
// closes the group or goes away. An error only when it cannot join or load (rank 0 is told it too).
Result<void> run_rank_worker(const std::string& address, uint64_t token, int rank, int n_ranks, int gpu = -1);

// The parts, for tests that run the ranks on threads (the socket does not care).
// Rank 0's ForwardPass over a joined group: `local` is rank 0's model, on `comm`.
class WorkerProcesses;  // the workers' processes on this machine (worker_processes.hpp)

class ProcessRanks final : public ForwardPass {
 public:
  ProcessRanks(std::unique_ptr<SocketGroup> group, std::unique_ptr<Comm> comm, std::unique_ptr<ForwardPass> local,
               std::unique_ptr<WorkerProcesses> workers);
  // The other ranks are not processes of this one's (threads of a test).
  ProcessRanks(std::unique_ptr<SocketGroup> group, std::unique_ptr<Comm> comm, std::unique_ptr<ForwardPass> local);
  ~ProcessRanks() override;  // tells the workers to stop and waits for them

  const ModelConfig& config() const override { return local_->config(); }
  Result<void> forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                       ForwardTrace* trace = nullptr) override;
  Result<void> forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs, std::span<const int32_t> tokens,
                                    float* logits, ForwardTrace* trace = nullptr) override;
  void set_phase_times(PhaseTimes* times) override { local_->set_phase_times(times); }
  Backend* cache_memory() const override { return local_->cache_memory(); }
  KvCache make_cache(cpu::LatentFormat format, int64_t n_pages) override;

  struct Channel;  // the group's sends, shared with the pools' replicas

 private:
  std::shared_ptr<Channel> channel_;
  std::unique_ptr<Comm> comm_;  // outlives local_
  std::unique_ptr<ForwardPass> local_;
  std::unique_ptr<WorkerProcesses> workers_;
  int64_t next_cache_ = 0;
};

// A worker's loop over a joined group: runs rank 0's calls on `model` (loaded with the group's
// Comm) until rank 0 sends stop (then ok) or goes away (an error naming that).
Result<void> serve_rank(SocketGroup& group, ForwardPass& model);

}  // namespace dsa
