// Writing safetensors checkpoints: one shard file whose layout is fixed up front (so tensors can be
// streamed in any order and in pieces, never held whole in memory), and the
// model.safetensors.index.json of a sharded checkpoint.
//
// Layout of a shard: 8-byte little-endian header length, the header JSON padded with spaces so the
// data starts 8-byte aligned, then the tensors back to back without holes, ordered by element
// size (largest first), then by name, so every tensor is aligned to its element size.
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
  // Creates `path` and writes its header; the data section is then filled by write().
  static Result<SafetensorsWriter> create(const std::filesystem::path& path, std::vector<TensorLayout> tensors,
                                          const std::map<std::string, std::string>& metadata = {});
  SafetensorsWriter(SafetensorsWriter&&) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) noexcept;
  ~SafetensorsWriter();

  // Writes bytes [offset, offset + data.size()) of tensor `name`'s data.
  Result<void> write(const std::string& name, std::span<const std::byte> data, size_t offset = 0);
  // Checks every tensor was written in full and closes the file.
  Result<void> finish();

 private:
  SafetensorsWriter() = default;
  struct Slot {
    size_t begin = 0;  // absolute offset in the file
    size_t nbytes = 0;
    size_t written = 0;
  };
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::unordered_map<std::string, Slot> slots_;
};

// "model-00002-of-00005.safetensors" (1-based index).
std::string shard_file_name(int index, int n_shards);

// Writes DIR/model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {name: file}}.
Result<void> write_safetensors_index(const std::filesystem::path& dir, const std::map<std::string, std::string>& weight_map,
                                     uint64_t total_size);

}  // namespace dsa
