// Writing safetensors checkpoints: one shard file whose layout is fixed up front (so tensors can be
// streamed in any order and in pieces, never held whole in memory), and the
// model.safetensors.index.json of a sharded checkpoint.
//
// Layout of a shard: 8-byte little-endian header length, the header JSON padded with spaces so the
// data starts 8-byte aligned, then the tensors back to back without holes, ordered by element
// size (largest first), then by name, so every tensor is aligned to its element size.
//
// Every file is written under a temporary name beside its own and renamed over it once complete: a
// reader (a process that has the old file mapped, or one that opens it meanwhile) sees the old file
// or the new one, never a part, and a failed write leaves nothing under the file's name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/loader/safetensors.hpp"

namespace dsa {

struct TensorLayout {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};

class SafetensorsWriter {
 public:
  // Creates a temporary file beside `path` and writes its header; the data section is then filled
  // by write(). Destroyed without a successful finish(), the temporary file is removed.
  static Result<SafetensorsWriter> create(const std::filesystem::path& path, std::vector<TensorLayout> tensors,
                                          const std::map<std::string, std::string>& metadata = {});
  SafetensorsWriter(SafetensorsWriter&&) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) noexcept;
  ~SafetensorsWriter();

  // Writes bytes [offset, offset + data.size()) of tensor `name`'s data.
  Result<void> write(const std::string& name, std::span<const std::byte> data, size_t offset = 0);
  // Checks every tensor was written in full, closes the file and renames it to `path`.
  Result<void> finish();

 private:
  SafetensorsWriter() = default;
  struct Slot {
    size_t begin = 0;  // absolute offset in the file
    size_t nbytes = 0;
    size_t written = 0;
  };
  void discard();  // closes and removes the temporary file
  std::filesystem::path path_, tmp_path_;
  std::FILE* file_ = nullptr;
  std::unordered_map<std::string, Slot> slots_;
};

// "model-00002-of-00005.safetensors" (1-based index).
std::string shard_file_name(int index, int n_shards);

// Writes a whole text file the same way: a temporary file beside it, renamed over it.
Result<void> write_text_file(const std::filesystem::path& path, const std::string& text);

// Writes DIR/model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {name: file}}.
Result<void> write_safetensors_index(const std::filesystem::path& dir, const std::map<std::string, std::string>& weight_map,
                                     uint64_t total_size);

}  // namespace dsa
