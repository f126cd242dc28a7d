// The bubblewrap sandbox (see sandbox.hpp).
#include "tools/sandbox.hpp"

#include <mutex>
#include <optional>

#include "tools/process.hpp"

namespace dsa {

namespace {

Result<void> probe_bwrap() {
  ProcessSpec spec;
  spec.argv = sandboxed_argv(std::filesystem::current_path(), {"true"});
  spec.merge_stderr = true;
  auto run = run_process(spec, "", std::chrono::seconds(10), nullptr, 4096);
  if (!run) return make_error("sandbox: " + run.error().message + " (install the bubblewrap package)");
  if (run->status.exit_code != 0) {
    std::string msg = run->out;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return make_error("sandbox: bwrap cannot create namespaces here (" + run->status.describe() + "): " + msg);
  }
  return {};
}

}  // namespace

Result<void> sandbox_available() {
  static std::once_flag once;
  static std::optional<Result<void>> result;
  std::call_once(once, [] { result.emplace(probe_bwrap()); });
  return *result;
}

std::vector<std::string> sandboxed_argv(const std::filesystem::path& workdir, const std::vector<std::string>& argv) {
  std::string w = workdir.string();
  // Later mounts go on top of earlier ones: /tmp is private, then the work dir (which may itself
  // be under /tmp) is bound writable over it.
  std::vector<std::string> out = {"bwrap",  "--ro-bind", "/",  "/",     "--dev",   "/dev",         "--proc",
                                  "/proc",  "--tmpfs",   "/tmp", "--bind", w,        w,              "--chdir",
                                  w,        "--unshare-net", "--unshare-ipc", "--die-with-parent", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

}  // namespace dsa
