// A mapped file cut short under the process: the next read of its missing pages faults (SIGBUS),
// and the handler ends the process with one line and exit status 1. Run in a child process.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "cli/fault_handler.hpp"
#include "tests/test_support.hpp"

TEST_CASE("a mapped file cut short while in use ends the process with one line, not a bare bus error") {
  dsa::test::TempDir dir("dsa-sigbus");
  const std::string file = (dir / "shard.bin").string();
  dsa::test::write_text(file, std::string(1 << 16, 'x'));
  int err_pipe[2];
  REQUIRE(::pipe(err_pipe) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(err_pipe[1], STDERR_FILENO);
    dsa::cli::install_fault_handler();
    const int fd = ::open(file.c_str(), O_RDONLY);
    auto* p = static_cast<const volatile char*>(::mmap(nullptr, 1 << 16, PROT_READ, MAP_SHARED, fd, 0));
    if (p == MAP_FAILED || ::truncate(file.c_str(), 0) != 0) ::_exit(3);
    const char c = p[1 << 15];  // past the new end: SIGBUS
    ::_exit(c == 'x' ? 4 : 5);  // not reached
  }
  ::close(err_pipe[1]);
  std::string err;
  char buf[256];
  for (ssize_t n; (n = ::read(err_pipe[0], buf, sizeof buf)) > 0;) err.append(buf, size_t(n));
  ::close(err_pipe[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(err ==
        "dsagent: a memory-mapped file (a checkpoint shard) was cut short while in use; the process cannot go on\n");
}
