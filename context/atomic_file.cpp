// Atomic whole-file writes (see atomic_file.hpp).
#include "context/atomic_file.hpp"

#include <fstream>

namespace dsa {

Result<void> write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f.is_open()) return make_error("cannot write '" + tmp.string() + "'");
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.flush();
    if (!f) return make_error("cannot write '" + tmp.string() + "' (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error("cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
  return {};
}

}  // namespace dsa
