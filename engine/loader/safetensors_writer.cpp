// Safetensors shard and index writing.
#include "engine/loader/safetensors_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

namespace dsa {

namespace {

// PATH.tmp-PID: beside the file, so the rename stays within one file system; the process id keeps
// two writers of the same directory apart.
std::filesystem::path temporary_path(const std::filesystem::path& path) {
  return path.string() + ".tmp-" + std::to_string(::getpid());
}

// Creates (or truncates) a temporary file for writing, with the permissions a plain create gives.
Result<std::FILE*> create_temporary(const std::filesystem::path& tmp, const std::filesystem::path& path) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return make_error(path.string() + ": cannot create file: " + std::strerror(errno));
  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    ::close(fd);
    std::remove(tmp.c_str());
    return make_error(path.string() + ": cannot create file: " + std::strerror(errno));
  }
  return f;
}

Result<void> rename_over(const std::filesystem::path& tmp, const std::filesystem::path& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return make_error(path.string() + ": cannot replace the file: " + std::strerror(err));
  }
  return {};
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&& o) noexcept
    : path_(std::move(o.path_)),
      tmp_path_(std::move(o.tmp_path_)),
      file_(std::exchange(o.file_, nullptr)),
      slots_(std::move(o.slots_)) {}

SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&& o) noexcept {
  if (this != &o) {
    discard();
    path_ = std::move(o.path_);
    tmp_path_ = std::move(o.tmp_path_);
    file_ = std::exchange(o.file_, nullptr);
    slots_ = std::move(o.slots_);
  }
  return *this;
}

SafetensorsWriter::~SafetensorsWriter() { discard(); }

void SafetensorsWriter::discard() {
  if (!file_) return;
  std::fclose(std::exchange(file_, nullptr));
  std::remove(tmp_path_.c_str());
}

Result<SafetensorsWriter> SafetensorsWriter::create(const std::filesystem::path& path, std::vector<TensorLayout> tensors,
                                                    const std::map<std::string, std::string>& metadata) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorLayout& a, const TensorLayout& b) {
    const size_t sa = dtype_size(a.dtype), sb = dtype_size(b.dtype);
    return sa != sb ? sa > sb : a.name < b.name;
  });
  SafetensorsWriter w;
  w.path_ = path;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;  // relative to the data section
  std::vector<size_t> begins;
  for (const TensorLayout& t : tensors) {
    size_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return make_error(path.string() + ": tensor '" + t.name + "': negative dimension");
      numel *= static_cast<size_t>(d);
    }
    const size_t nbytes = numel * dtype_size(t.dtype);
    if (!w.slots_.emplace(t.name, Slot{offset, nbytes, 0}).second)
      return make_error(path.string() + ": tensor '" + t.name + "' listed twice");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const size_t data_start = 8 + text.size();
  for (auto& [name, slot] : w.slots_) slot.begin += data_start;

  w.tmp_path_ = temporary_path(path);
  DSA_TRY(file, create_temporary(w.tmp_path_, path));
  w.file_ = file;
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  if (std::fwrite(len, 1, 8, w.file_) != 8 || std::fwrite(text.data(), 1, text.size(), w.file_) != text.size())
    return make_error(path.string() + ": write failed");
  return w;
}

Result<void> SafetensorsWriter::write(const std::string& name, std::span<const std::byte> data, size_t offset) {
  const auto it = slots_.find(name);
  if (it == slots_.end()) return make_error(path_.string() + ": tensor '" + name + "' is not in the header");
  Slot& slot = it->second;
  if (offset + data.size() > slot.nbytes)
    return make_error(path_.string() + ": tensor '" + name + "': write past its " + std::to_string(slot.nbytes) + " bytes");
  if (!file_) return make_error(path_.string() + ": already finished");
  if (fseeko(file_, static_cast<off_t>(slot.begin + offset), SEEK_SET) != 0 ||
      std::fwrite(data.data(), 1, data.size(), file_) != data.size())
    return make_error(path_.string() + ": write failed (disk full?)");
  slot.written += data.size();
  return {};
}

Result<void> SafetensorsWriter::finish() {
  if (!file_) return make_error(path_.string() + ": already finished");
  // Report the first incomplete tensor by name so the message is deterministic.
  std::set<std::string> incomplete;
  for (const auto& [name, slot] : slots_)
    if (slot.written != slot.nbytes) incomplete.insert(name);
  const int rc = std::fclose(std::exchange(file_, nullptr));
  if (!incomplete.empty() || rc != 0) std::remove(tmp_path_.c_str());
  if (!incomplete.empty()) return make_error(path_.string() + ": tensor '" + *incomplete.begin() + "' was not written in full");
  if (rc != 0) return make_error(path_.string() + ": write failed on close");
  return rename_over(tmp_path_, path_);
}

std::string shard_file_name(int index, int n_shards) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", index, n_shards);
  return buf;
}

Result<void> write_safetensors_index(const std::filesystem::path& dir, const std::map<std::string, std::string>& weight_map,
                                     uint64_t total_size) {
  const nlohmann::ordered_json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  return write_text_file(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

Result<void> write_text_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = temporary_path(path);
  DSA_TRY(file, create_temporary(tmp, path));
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  if (std::fclose(file) != 0 || !written) {
    std::remove(tmp.c_str());
    return make_error(path.string() + ": write failed");
  }
  return rename_over(tmp, path);
}

}  // namespace dsa
