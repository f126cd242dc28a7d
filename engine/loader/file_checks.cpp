// Regular-file checks and whole-file reads for a checkpoint's files.
#include "engine/loader/file_checks.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dsa {

namespace {

// The words for a file type that is not a regular file.
std::string type_reason(std::filesystem::file_type type) {
  using std::filesystem::file_type;
  switch (type) {
    case file_type::not_found:
      return "is missing";
    case file_type::directory:
      return "is a directory, not a regular file";
    case file_type::fifo:
      return "is a FIFO, not a regular file";
    case file_type::socket:
      return "is a socket, not a regular file";
    case file_type::character:
    case file_type::block:
      return "is a device, not a regular file";
    default:
      return "is not a regular file";
  }
}

std::filesystem::file_type type_of_mode(mode_t mode) {
  using std::filesystem::file_type;
  if (S_ISDIR(mode)) return file_type::directory;
  if (S_ISFIFO(mode)) return file_type::fifo;
  if (S_ISSOCK(mode)) return file_type::socket;
  if (S_ISCHR(mode)) return file_type::character;
  if (S_ISBLK(mode)) return file_type::block;
  return file_type::unknown;
}

}  // namespace

std::string not_regular_file_reason(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status target = fs::status(path, ec);
  if (fs::is_regular_file(target)) return {};
  if (target.type() == fs::file_type::not_found && fs::is_symlink(fs::symlink_status(path, ec)))
    return "is a symbolic link to a missing file";
  return type_reason(target.type());
}

Result<int> open_regular_file(const std::filesystem::path& path, std::string_view what) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It changes nothing for
  // a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    std::error_code ec;
    const std::filesystem::path dir = path.parent_path();
    if (err == ENOENT && !dir.empty() && !std::filesystem::exists(dir, ec))
      return make_error(dir.string() + ": directory does not exist");
    if (err == ENOENT && std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec)))
      return make_error(path.string() + ": is a symbolic link to a missing file");
    return make_error(path.string() + ": cannot open " + std::string(what) + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path.string() + ": " + type_reason(type_of_mode(st.st_mode)));
  }
  return fd;
}

Result<std::string> read_text_file(const std::filesystem::path& path, std::string_view what) {
  DSA_TRY(fd, open_regular_file(path, what));
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return make_error(path.string() + ": cannot read " + std::string(what) + ": " + std::strerror(err));
    }
    text.append(buf, size_t(n));
  }
  ::close(fd);
  return text;
}

}  // namespace dsa
