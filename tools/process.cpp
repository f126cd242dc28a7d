// Child processes in their own process group (see process.hpp).
#include "tools/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tools/truncate.hpp"

extern char** environ;

namespace dsa {

namespace {

// What the child reports through the close-on-exec pipe when it cannot start the program.
struct SpawnFailure {
  int in_chdir;  // 1: chdir(cwd) failed, 0: exec failed
  int err;
};

// Every process a run starts carries this variable with the run's own value, wherever it goes (a
// new session by setsid, a double fork out of the process group): ended with the run.
constexpr const char* kRunTagVar = "DSA_RUN_TAG";

std::string next_run_tag() {
  static std::atomic<uint64_t> n{0};
  return std::to_string(::getpid()) + "-" + std::to_string(++n);
}

// Kills the processes whose environment holds `tag` (Linux: /proc/PID/environ, readable for this
// user's processes); a few passes, for those that forked while the last one ran. Returns how many.
int kill_tagged(const std::string& tag) {
  const std::string entry = std::string(kRunTagVar) + "=" + tag;
  int killed = 0;
  for (int pass = 0; pass < 3; ++pass) {
    int found = 0;
    std::error_code ec;
    for (const auto& dir : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string name = dir.path().filename().string();
      if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return std::isdigit(uint8_t(c)); }))
        continue;
      std::ifstream in(dir.path() / "environ", std::ios::binary);
      const std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      for (size_t p = 0; p < env.size();) {
        const size_t end = std::min(env.find('\0', p), env.size());
        if (std::string_view(env).substr(p, end - p) == entry) {
          if (::kill(std::stoi(name), SIGKILL) == 0) ++found;
          break;
        }
        p = end + 1;
      }
    }
    killed += found;
    if (found == 0) break;
  }
  return killed;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// The child's environment: the inherited one with spec.env set on top. Built before fork because
// the child may only call async-signal-safe functions.
std::vector<std::string> child_environment(const ProcessSpec& spec) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    bool overridden = false;
    for (const auto& [k, v] : spec.env) overridden = overridden || (kv.starts_with(k) && kv.size() > k.size() && kv[k.size()] == '=');
    if (!overridden) env.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
  return env;
}

ExitStatus status_of(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) s.exit_code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) s.signal = WTERMSIG(wstatus);
  return s;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exit code " + std::to_string(exit_code);
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const ProcessSpec& spec) {
  DSA_CHECK(!spec.argv.empty());
  std::vector<std::string> env = child_environment(spec);
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string cwd = spec.cwd.string();

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  auto fail = [&](const char* what) {
    int e = errno;
    for (int* p : {in, out, err, report}) close_fd(p[0]), close_fd(p[1]);
    return make_error(std::string("cannot start '") + spec.argv[0] + "': " + what + ": " + std::strerror(e));
  };
  if (spec.stdin_pipe ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0
                      : (in[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
    return fail("stdin");
  if (pipe2(out, O_CLOEXEC) != 0) return fail("pipe");
  if (!spec.merge_stderr && pipe2(err, O_CLOEXEC) != 0) return fail("pipe");
  if (pipe2(report, O_CLOEXEC) != 0) return fail("pipe");

  pid_t pid = fork();
  if (pid < 0) return fail("fork");
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(spec.merge_stderr ? out[1] : err[1], 2);
    SpawnFailure f{1, 0};
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      f.err = errno;
    } else {
      execvpe(argv[0], argv.data(), envp.data());
      f = {0, errno};
    }
    ssize_t ignored = ::write(report[1], &f, sizeof f);
    (void)ignored;
    _exit(127);
  }
  close_fd(in[0]);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(report[1]);
  SpawnFailure f{};
  ssize_t n;
  do n = ::read(report[0], &f, sizeof f);
  while (n < 0 && errno == EINTR);
  close_fd(report[0]);
  std::unique_ptr<ChildProcess> child(new ChildProcess);
  child->pid_ = pid;
  child->in_ = in[1];
  child->out_ = out[0];
  child->err_ = err[0];
  if (n == static_cast<ssize_t>(sizeof f)) {
    child->wait();
    if (f.in_chdir) return make_error("cannot run '" + spec.argv[0] + "' in " + cwd + ": " + std::strerror(f.err));
    return make_error("cannot run '" + spec.argv[0] + "': " + std::strerror(f.err));
  }
  return child;
}

ChildProcess::~ChildProcess() {
  if (!status_) {
    kill_group();
    wait();
  }
  close_fd(in_);
  close_fd(out_);
  close_fd(err_);
}

void ChildProcess::close_stdin() { close_fd(in_); }

bool ChildProcess::write_stdin(std::string_view data) {
  while (!data.empty()) {
    if (in_ < 0) return false;
    ssize_t n = ::send(in_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void ChildProcess::kill_group() {
  if (pid_ > 0) ::kill(-pid_, SIGKILL);
}

std::optional<ExitStatus> ChildProcess::poll_exit() {
  if (status_) return status_;
  int ws = 0;
  if (waitpid(pid_, &ws, WNOHANG) == pid_) status_ = status_of(ws);
  return status_;
}

ExitStatus ChildProcess::wait() {
  if (status_) return *status_;
  int ws = 0;
  pid_t r;
  do r = waitpid(pid_, &ws, 0);
  while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? status_of(ws) : ExitStatus{};
  return *status_;
}

Result<ProcessRun> run_process(const ProcessSpec& spec, const std::string& stdin_text, std::chrono::milliseconds timeout,
                               const std::atomic<bool>* cancel, size_t max_output_bytes) {
  using clock = std::chrono::steady_clock;
  // Output that background processes still write after the command returned is read for this long.
  constexpr auto kLeftoverGrace = std::chrono::milliseconds(200);
  ProcessSpec tagged = spec;
  const std::string tag = next_run_tag();
  tagged.env.emplace_back(kRunTagVar, tag);
  DSA_TRY(child, ChildProcess::spawn(tagged));
  std::string_view pending = stdin_text;
  if (spec.stdin_pipe) fcntl(child->stdin_fd(), F_SETFL, O_NONBLOCK);
  if (spec.stdin_pipe && pending.empty()) child->close_stdin();
  HeadTailBuffer out(max_output_bytes), err(max_output_bytes);
  int out_fd = child->stdout_fd(), err_fd = child->stderr_fd();
  ProcessRun run;
  auto deadline = clock::now() + timeout;
  std::optional<clock::time_point> exited_at;
  char buf[65536];
  for (;;) {
    pollfd fds[3];
    nfds_t nfds = 0;
    for (int fd : {out_fd, err_fd}) if (fd >= 0) fds[nfds++] = {fd, POLLIN, 0};
    if (child->stdin_fd() >= 0) fds[nfds++] = {child->stdin_fd(), POLLOUT, 0};
    if (poll(fds, nfds, 50) < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < nfds; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == child->stdin_fd()) {
        ssize_t n = ::send(fds[i].fd, pending.data(), pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) pending.remove_prefix(static_cast<size_t>(n));
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || pending.empty()) child->close_stdin();
        continue;
      }
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      bool is_out = fds[i].fd == out_fd;
      if (n <= 0) {
        (is_out ? out_fd : err_fd) = -1;  // EOF: the child keeps owning the descriptor
        continue;
      }
      (is_out ? out : err).append(std::string_view(buf, static_cast<size_t>(n)));
    }
    if (!exited_at && child->poll_exit()) exited_at = clock::now();
    if (exited_at && out_fd < 0 && err_fd < 0) break;
    if (exited_at && clock::now() - *exited_at > kLeftoverGrace) break;
    if (cancel && cancel->load()) {
      run.cancelled = true;
      break;
    }
    if (clock::now() > deadline) {
      run.timed_out = true;
      break;
    }
  }
  child->kill_group();
  run.status = child->wait();
  kill_tagged(tag);  // what left the process group
  run.out = out.str();
  run.out_truncated = out.truncated();
  run.err = err.str();
  return run;
}

}  // namespace dsa
