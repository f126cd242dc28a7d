#include "engine/model/worker_processes.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "engine/model/rank_messages.hpp"

extern char** environ;

namespace dsa {
namespace {

std::string exit_text(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  if (WEXITSTATUS(status) == 127) return "could not start its program (exit status 127)";
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

Result<std::unique_ptr<WorkerProcesses>> WorkerProcesses::start(const std::string& program,
                                                                const SocketGroup& group, int local, Device device) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  if (device == Device::cpu && !std::getenv("DSA_THREADS")) {
    env_strings.push_back("DSA_THREADS=" + std::to_string(threads_per_rank(local)));
  }
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<pid_t> pids;
  const pid_t parent = ::getpid();
  for (int r = 1; r < local; ++r) {
    std::vector<std::string> args = {program, "rank-worker", "--connect", group.path(), "--token",
                                     ranks::token_text(group.token()), "--rank", std::to_string(r), "--ranks",
                                     std::to_string(group.size())};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      const std::string why = std::strerror(errno);
      for (pid_t p : pids) {
        ::kill(p, SIGTERM);
        ::waitpid(p, nullptr, 0);
      }
      return make_error("cannot start a rank process: " + why);
    }
    if (pid == 0) {
      // A worker ends with rank 0: strictly, with the thread that started it, which is the one that
      // opens the model (the main thread in dsagent).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      // Ctrl-C in a terminal reaches the whole process group: it is rank 0's to handle (chat stops
      // the turn), not a reason for a worker to end.
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGINT, &ignore, nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  return std::make_unique<WorkerProcesses>(std::move(pids));
}

int WorkerProcesses::threads_per_rank(int local) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return int(std::max(1u, cores / unsigned(std::max(1, local))));
}

WorkerProcesses::~WorkerProcesses() {
  stop_watch();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (pid_t pid : pids_) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

std::optional<std::string> WorkerProcesses::ended() {
  for (size_t i = 0; i < pids_.size(); ++i) {
    int status = 0;
    if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i])
      return "rank " + std::to_string(i + 1) + " (process " + std::to_string(pids_[i]) + ") " + exit_text(status);
  }
  return std::nullopt;
}

void WorkerProcesses::watch(const SocketGroup& group) {
  if (watcher_.joinable()) return;
  watcher_ = std::thread([this, &group] {
    while (!stopping_.load()) {
      if (auto gone = ended()) ranks::group_lost(*gone);
      if (const int r = group.closed_peer(); r > 0) ranks::group_lost("rank " + std::to_string(r) + " closed its connection");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
}

void WorkerProcesses::stop_watch() {
  stopping_.store(true);
  if (watcher_.joinable()) watcher_.join();
}

void WorkerProcesses::kill_all() {
  stop_watch();
  for (pid_t pid : pids_) ::kill(pid, SIGTERM);
}

}  // namespace dsa
