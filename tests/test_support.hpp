// Helpers shared by the tests: fixture paths, temporary directories, running the dsagent binary.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace dsa::test {

// The paths the build compiled in, or, for test binaries run from another checkout (built on one
// machine, run on a GPU machine: scripts/gpu-check.sh with PREBUILT=1), those under the checkout
// DSA_SOURCE_DIR names and the dsagent binary DSA_BINARY names.
inline const char* env_path(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}
inline std::filesystem::path source_dir() {
  const char* e = env_path("DSA_SOURCE_DIR");
  return e ? e : DSA_SOURCE_DIR;
}
inline std::filesystem::path fixtures_dir() {
  return env_path("DSA_SOURCE_DIR") ? source_dir() / "tests" / "fixtures" : DSA_FIXTURES_DIR;
}
inline std::filesystem::path shared_dir() {
  return env_path("DSA_SOURCE_DIR") ? source_dir().parent_path() / "shared" : DSA_SHARED_DIR;
}
inline std::filesystem::path dsagent_binary() {
  const char* e = env_path("DSA_BINARY");
  return e ? e : DSA_BINARY;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// A fresh directory under the system temp dir, removed when the object goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "dsa") {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            (tag + "-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout (and stderr when merged)
};

// Runs a shell command line, capturing stdout (append " 2>&1" to capture stderr too).
inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace dsa::test
