// Safetensors checkpoints: one file or shards listed in model.safetensors.index.json, mmapped
// read-only behind one name -> {shard, offset, dtype, shape} index with bounds and overlap checks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

enum class DType { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

const char* dtype_name(DType t);                       // the safetensors spelling, e.g. "F8_E4M3"
std::optional<DType> parse_dtype(std::string_view s);
size_t dtype_size(DType t);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int shard = 0;               // index into Checkpoint::shard_paths()
  size_t offset = 0;           // byte offset of the data in the shard file (header included)
  size_t nbytes = 0;
  const std::byte* data = nullptr;  // points into the read-only mapping

  int64_t numel() const;
  std::string shape_str() const;    // "[576, 7168]"
};

class MappedFile;  // read-only mmap, defined in the .cpp

class Checkpoint {
 public:
  // DIR with model.safetensors.index.json (shards), or with a single model.safetensors,
  // or the path of one .safetensors file.
  static Result<Checkpoint> open(const std::filesystem::path& path);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::vector<std::filesystem::path>& shard_paths() const { return shard_paths_; }
  // The "__metadata__" map of the first shard (string values only, as the format requires).
  const std::unordered_map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  Checkpoint() = default;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<std::filesystem::path> shard_paths_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::unordered_map<std::string, std::string> metadata_;
};

// Parses one safetensors header (the 8-byte length, then JSON) against a file of `file_size` bytes.
// Pure function over bytes: the fuzz target. Every tensor's range is checked against the data
// section, and no two tensors may overlap.
struct ParsedHeader {
  std::vector<TensorInfo> tensors;  // data == nullptr; offset is absolute in the file
  std::unordered_map<std::string, std::string> metadata;
  size_t data_start = 0;
};
Result<ParsedHeader> parse_safetensors_header(std::span<const std::byte> file_prefix, size_t file_size,
                                              const std::string& file_name);

// The values of a F32, F16, BF16, F8_E4M3 or F8_E5M2 tensor as floats (exact conversions); an
// error for other dtypes. Copies: meant for tests, inspection and small tensors (norms, biases).
Result<std::vector<float>> read_as_f32(const TensorInfo& t);

}  // namespace dsa
