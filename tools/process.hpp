// Child processes for tools: shell commands, command plugins and MCP servers. Every child runs in
// its own session and process group (setsid), so a timeout or a cancel kills everything it started
// (kill(-pgid)), grandchildren included. stdin is either /dev/null or a socket the parent writes
// to (a socket so a write to a child that has gone away fails with EPIPE instead of raising
// SIGPIPE in the agent).
#pragma once
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH when it has no '/'
  std::filesystem::path cwd;      // empty = the agent's current directory
  std::vector<std::pair<std::string, std::string>> env;  // set on top of the inherited environment
  bool stdin_pipe = false;        // false = stdin is /dev/null
  bool merge_stderr = false;      // true = stderr goes to the stdout pipe (one interleaved stream)
};

struct ExitStatus {
  int exit_code = -1;  // set when the process exited
  int signal = 0;      // set when a signal killed it
  std::string describe() const;  // "exit code 3" / "killed by signal 9 (Killed)"
};

class ChildProcess {
 public:
  // error: "cannot run 'prog': No such file or directory" (exec failures are reported by the
  // child through a close-on-exec pipe, so a bad command fails here, not later).
  static Result<std::unique_ptr<ChildProcess>> spawn(const ProcessSpec& spec);
  ~ChildProcess();  // kills the process group and reaps the child
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int stdin_fd() const { return in_; }    // -1 without stdin_pipe or after close_stdin
  int stdout_fd() const { return out_; }
  int stderr_fd() const { return err_; }  // -1 with merge_stderr
  void close_stdin();
  // Writes all of data to stdin; false when the child closed it or went away.
  bool write_stdin(std::string_view data);
  void kill_group();
  // The exit status once the child has exited (non-blocking); reaps it.
  std::optional<ExitStatus> poll_exit();
  ExitStatus wait();  // blocks until the child exits

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::optional<ExitStatus> status_;
};

struct ProcessRun {
  ExitStatus status;
  bool timed_out = false;
  bool cancelled = false;
  std::string out;  // stdout (with stderr when merged), head+tail capped at max_output_bytes
  bool out_truncated = false;
  std::string err;  // stderr when not merged, capped the same way
};

// Runs a process to completion: writes stdin_text (when spec.stdin_pipe) and closes stdin, reads
// its output, and kills the whole process group on timeout or when *cancel turns true. Processes
// the command left running in the background are killed once it returns (after a short grace for
// their pending output), those that left the process group too (setsid, a double fork: found by a
// variable of the run's environment they inherit), so a call never leaves anything behind.
Result<ProcessRun> run_process(const ProcessSpec& spec, const std::string& stdin_text, std::chrono::milliseconds timeout,
                               const std::atomic<bool>* cancel, size_t max_output_bytes);

}  // namespace dsa
