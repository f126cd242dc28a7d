// Atomic whole-file writes (see atomic_file.hpp).
#include "context/atomic_file.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace dsa {

Result<void> write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return make_error("cannot write '" + path.string() + "': a directory");
  // A temporary name of this process and call: two writers of one file (two runs given the same
  // --trajectory) never write into each other's; the last rename wins whole.
  static std::atomic<uint64_t> calls{0};
  std::filesystem::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(++calls);
  const auto fail = [&](const std::string& why) -> Result<void> {
    std::filesystem::remove(tmp, ec);
    return make_error("cannot write '" + path.string() + "': " + why);
  };
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f.is_open()) return fail(std::strerror(errno));
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.flush();
    if (!f) return fail("the write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fail(ec.message());
  return {};
}

}  // namespace dsa
