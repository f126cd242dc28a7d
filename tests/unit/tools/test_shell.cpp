// The shell tool: output and exit codes, stdin closed, timeouts and cancel killing the whole
// process group, approval modes, and the bubblewrap sandbox (skipped where bwrap cannot run).
#include <doctest/doctest.h>

#include <thread>

#include "tools/coding_tools.hpp"
#include "tools/sandbox.hpp"
#include "tools_test_support.hpp"

using namespace dsa;
using namespace dsa::test;

namespace {

struct ShellFixture {
  TempDir dir{"dsa-shell"};
  ToolRegistry reg;
  ToolContext ctx = context_in(dir);
  ShellFixture() { reg.add(make_shell_tool()); }
  Observation run(const std::string& command) { return call_tool(reg, ctx, "shell", {{"command", command}}); }
};

}  // namespace

TEST_CASE("shell runs in the work dir and reports output and exit code") {
  ShellFixture f;
  write_text(f.dir / "hello.txt", "hi\n");
  Observation ok = f.run("cat hello.txt; echo to-stderr >&2");
  CHECK(ok.text == "hi\nto-stderr\n[exit code 0]");
  CHECK_FALSE(ok.is_error);

  Observation bad = f.run("echo partial; exit 3");
  CHECK(bad.text == "partial\n[exit code 3]");
  CHECK(bad.is_error);

  CHECK(f.run("true").text == "[exit code 0]");
  CHECK(f.run("kill -9 $$").text == "[killed by signal 9 (Killed)]");
}

TEST_CASE("shell closes stdin, so a command waiting for input ends at once") {
  ShellFixture f;
  f.ctx.timeout = std::chrono::seconds(20);
  Observation o = f.run("cat; read x; echo \"read returned $?\"");
  CHECK(o.text == "read returned 1\n[exit code 0]");
  CHECK(o.seconds < 5);
}

TEST_CASE("shell timeout kills the whole process group, grandchildren included") {
  ShellFixture f;
  f.ctx.timeout = std::chrono::seconds(1);
  // bash starts a grandchild `sleep` in a subshell and waits for it.
  Observation o = f.run("(sleep 300 & echo $! > sleep.pid; wait) ; echo never");
  CHECK(o.is_error);
  CHECK(o.text == "[timed out after 1 s; the command and everything it started were killed]");
  CHECK(o.seconds < 5);
  long pid = std::stol(read_text(f.dir / "sleep.pid"));
  for (int i = 0; i < 50 && process_alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(process_alive(pid));
}

TEST_CASE("shell kills background processes left behind when the command returns") {
  ShellFixture f;
  Observation o = f.run("sleep 300 >/dev/null 2>&1 & echo $! > bg.pid; echo started");
  CHECK(o.text == "started\n[exit code 0]");
  long pid = std::stol(read_text(f.dir / "bg.pid"));
  for (int i = 0; i < 50 && process_alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(process_alive(pid));
}

TEST_CASE("shell kills background processes that left the process group (setsid, a double fork)") {
  ShellFixture f;
  Observation o = f.run(
      "setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $! > a.pid; "
      "(sh -c 'sleep 301 >/dev/null 2>&1 < /dev/null & echo $! > b.pid' &); sleep 0.2; echo started");
  CHECK(o.text == "started\n[exit code 0]");
  for (const char* file : {"a.pid", "b.pid"}) {
    CAPTURE(file);
    long pid = std::stol(read_text(f.dir / file));
    for (int i = 0; i < 100 && process_alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(process_alive(pid));
  }
}

TEST_CASE("shell stops when the cancel flag is raised") {
  ShellFixture f;
  std::atomic<bool> cancel{false};
  f.ctx.cancel = &cancel;
  std::thread raiser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  Observation o = f.run("echo before; sleep 300");
  raiser.join();
  CHECK(o.text == "before\n[cancelled; the command and everything it started were killed]");
  CHECK(o.seconds < 5);
}

TEST_CASE("shell output is cut head+tail while it streams") {
  ShellFixture f;
  f.ctx.max_output_bytes = 1000;
  Observation o = f.run("seq 1 100000");
  CHECK(o.truncated);
  CHECK(o.text.rfind("1\n2\n3\n", 0) == 0);
  CHECK(o.text.ends_with("99999\n100000\n[exit code 0]"));
  // seq 1 100000 prints 588895 bytes, of which 1000 are kept.
  CHECK(o.text.find("[... 587895 bytes (") != std::string::npos);
}

TEST_CASE("shell approval: read-only refuses, ask asks and follows the answer") {
  ShellFixture f;
  f.ctx.approval = ApprovalMode::read_only;
  Observation ro = f.run("touch made");
  CHECK(ro.is_error);
  CHECK(ro.text == "refused: read-only mode allows no commands (shell: touch made)");
  CHECK_FALSE(std::filesystem::exists(f.dir / "made"));

  f.ctx.approval = ApprovalMode::ask;
  Observation no_asker = f.run("touch made");
  CHECK(no_asker.text == "refused: the user did not approve shell: touch made");
  CHECK_FALSE(std::filesystem::exists(f.dir / "made"));

  std::vector<std::string> asked;
  bool answer = false;
  f.ctx.ask = [&](const std::string& action) {
    asked.push_back(action);
    return answer;
  };
  CHECK(f.run("touch made").is_error);
  CHECK_FALSE(std::filesystem::exists(f.dir / "made"));
  answer = true;
  CHECK(f.run("touch made").text == "[exit code 0]");
  CHECK(std::filesystem::exists(f.dir / "made"));
  CHECK(asked == std::vector<std::string>{"shell: touch made", "shell: touch made"});
}

TEST_CASE("shell in the bubblewrap sandbox: work dir writable, rest read-only, no network") {
  ShellFixture f;
  f.ctx.sandbox = true;
  if (auto ok = sandbox_available(); !ok) {
    Observation o = f.run("true");
    CHECK(o.is_error);
    CHECK(o.text == "shell: " + ok.error().message);
    MESSAGE("skipped: sandbox cases: " << ok.error().message);
    return;
  }
  CHECK(f.run("echo inside > in.txt && cat in.txt").text == "inside\n[exit code 0]");
  // The rest of the file system is read-only...
  Observation ro = f.run("touch /usr/dsa-sandbox-probe");
  std::filesystem::remove("/usr/dsa-sandbox-probe");
  CHECK(ro.is_error);
  CHECK(ro.text.find("Read-only file system") != std::string::npos);
  // ...and /tmp is private, so files beside the work dir are neither seen nor written.
  TempDir outside("dsa-outside");
  write_text(outside / "secret.txt", "s");
  Observation o = f.run("cat " + (outside / "secret.txt").string() + "; echo x > " + (outside / "escape.txt").string());
  CHECK(o.is_error);
  CHECK(o.text.find("No such file or directory") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(outside / "escape.txt"));
  // A fresh network namespace has only the loopback device.
  CHECK(f.run("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '").text == "lo\n[exit code 0]");
}
