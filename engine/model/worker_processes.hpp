// The worker processes of a rank group on rank 0's machine (engine/model/rank_processes.hpp):
// started as `PROGRAM rank-worker --connect ADDRESS --token T --rank r --ranks n`, watched while the
// group runs, reaped at the end.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/dist/socket_group.hpp"
#include "engine/model/open_model.hpp"

namespace dsa {

class WorkerProcesses {
 public:
  // Starts ranks 1..local-1 of `group` running `program`. CPU ranks share the cores: each worker
  // gets DSA_THREADS = cores / local unless the environment sets it. Workers ignore Ctrl-C and end
  // with the thread that started them. An error (the workers started so far ended) when a process
  // cannot be made.
  static Result<std::unique_ptr<WorkerProcesses>> start(const std::string& program, const SocketGroup& group,
                                                        int local, Device device);
  // The CPU threads of each of `local` CPU ranks sharing this machine's cores (at least 1).
  static int threads_per_rank(int local);
  explicit WorkerProcesses(std::vector<pid_t> pids) : pids_(std::move(pids)) {}
  // Stops the watch and reaps the processes (SIGKILL for one still running after 10 s).
  ~WorkerProcesses();
  WorkerProcesses(const WorkerProcesses&) = delete;
  WorkerProcesses& operator=(const WorkerProcesses&) = delete;

  // The first worker that has ended (now reaped): its rank and how, or nothing. Called before the
  // watch, then only by the watcher.
  std::optional<std::string> ended();
  // From now until stop_watch(), a thread checks every 100 ms that the workers run and that every
  // rank's connection to `group` is open (ranks started by hand on other machines have no process
  // here); one that ends stops this process with one line (ranks::group_lost).
  void watch(const SocketGroup& group);
  void stop_watch();
  // Ends the workers now (a failed start).
  void kill_all();

 private:
  std::vector<pid_t> pids_;
  std::thread watcher_;
  std::atomic<bool> stopping_{false};
};

}  // namespace dsa
