// SIGBUS as one line (see fault_handler.hpp).
#include "cli/fault_handler.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace dsa::cli {

namespace {

extern "C" void on_sigbus(int) {
  // Only async-signal-safe calls here: write and _exit.
  static const char kMessage[] =
      "dsagent: a memory-mapped file (a checkpoint shard) was cut short while in use; the process cannot go on\n";
  ssize_t ignored = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  (void)ignored;
  ::_exit(1);
}

}  // namespace

void install_fault_handler() {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = on_sigbus;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGBUS, &action, nullptr);
}

}  // namespace dsa::cli
