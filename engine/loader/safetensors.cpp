// Safetensors reader: header validation (a pure function over bytes) and the mmapped checkpoint.
// File layout: [u64 little-endian header length N][N bytes of JSON][data section]. The JSON maps
// each tensor name to {dtype, shape, data_offsets [begin, end)} relative to the data section,
// plus an optional "__metadata__" map of strings.
#include "engine/loader/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/loader/file_checks.hpp"
#include "engine/loader/json_text.hpp"
#include "kernels/dtypes.hpp"

namespace dsa {

namespace {

using json = nlohmann::json;

struct DTypeEntry {
  DType type;
  const char* name;
  size_t size;
};

constexpr std::array<DTypeEntry, 15> kDTypes = {{
    {DType::F64, "F64", 8},     {DType::F32, "F32", 4},         {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},   {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},     {DType::I32, "I32", 4},         {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},       {DType::U64, "U64", 8},         {DType::U32, "U32", 4},
    {DType::U16, "U16", 2},     {DType::U8, "U8", 1},           {DType::BOOL, "BOOL", 1},
}};

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

// A JSON number that is a non-negative integer fitting in uint64.
bool get_uint(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = uint64_t(j.get<int64_t>());
    return true;
  }
  return false;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// One tensor entry of the header; `data_size` is the size of the data section.
Result<TensorInfo> parse_tensor_entry(const std::string& file_name, const std::string& name, const json& entry,
                                      size_t data_start, uint64_t data_size) {
  auto fail = [&](const std::string& what) {
    return make_error(fmt::format("{}: tensor '{}': {}", file_name, printable(name), what));
  };
  if (!entry.is_object()) return fail("entry is not a JSON object");
  TensorInfo t;
  t.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) return fail("missing \"dtype\" string");
  const auto dtype = parse_dtype(dtype_it->get<std::string>());
  if (!dtype) return fail(fmt::format("unknown dtype '{}'", printable(dtype_it->get<std::string>())));
  t.dtype = *dtype;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) return fail("missing \"shape\" array");
  uint64_t numel = 1;
  bool numel_overflow = false;
  for (const json& d : *shape_it) {
    uint64_t dim = 0;
    if (!get_uint(d, dim) || dim > uint64_t(INT64_MAX)) {
      return fail(fmt::format("shape {} has a dimension that is not a non-negative integer", describe_json(*shape_it)));
    }
    t.shape.push_back(int64_t(dim));
    numel_overflow = numel_overflow || __builtin_mul_overflow(numel, dim, &numel);
  }
  if (std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end()) {  // empty, however large the rest
    numel = 0;
    numel_overflow = false;
  }

  const auto offsets_it = entry.find("data_offsets");
  uint64_t begin = 0, end = 0;
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !get_uint((*offsets_it)[0], begin) || !get_uint((*offsets_it)[1], end)) {
    return fail("\"data_offsets\" must be [begin, end] with non-negative integers");
  }
  if (begin > end) return fail(fmt::format("data_offsets [{}, {}] end before they begin", begin, end));
  if (end > data_size) {
    return fail(fmt::format("data_offsets [{}, {}] outside the data section ({} bytes)", begin, end, data_size));
  }
  uint64_t nbytes = 0;
  const bool bytes_overflow = numel_overflow || __builtin_mul_overflow(numel, uint64_t(dtype_size(t.dtype)), &nbytes);
  if (bytes_overflow || nbytes != end - begin) {
    return fail(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", shape_string(t.shape),
                            dtype_name(t.dtype), bytes_overflow ? std::string("too many") : std::to_string(nbytes),
                            begin, end, end - begin));
  }
  t.offset = data_start + size_t(begin);
  t.nbytes = size_t(nbytes);
  return t;
}

}  // namespace

// ---- dtypes ------------------------------------------------------------------------------------

const char* dtype_name(DType t) {
  for (const auto& e : kDTypes)
    if (e.type == t) return e.name;
  return "?";
}

std::optional<DType> parse_dtype(std::string_view s) {
  for (const auto& e : kDTypes)
    if (s == e.name) return e.type;
  return std::nullopt;
}

size_t dtype_size(DType t) {
  for (const auto& e : kDTypes)
    if (e.type == t) return e.size;
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const { return shape_string(shape); }

// ---- header ------------------------------------------------------------------------------------

Result<ParsedHeader> parse_safetensors_header(std::span<const std::byte> file_prefix, size_t file_size,
                                              const std::string& file_name) {
  DSA_CHECK(file_prefix.size() <= file_size, "the prefix is part of the file");
  if (file_size < 8) {
    return make_error(fmt::format("{}: file is {} bytes, too short for a safetensors header", file_name, file_size));
  }
  if (file_prefix.size() < 8) return make_error(fmt::format("{}: header length prefix not available", file_name));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | uint64_t(file_prefix[size_t(i)]);
  if (header_len > kMaxHeaderBytes) {
    return make_error(fmt::format("{}: header length {} exceeds the {} byte limit (not a safetensors file?)", file_name,
                                  header_len, kMaxHeaderBytes));
  }
  if (header_len > file_size - 8) {
    return make_error(fmt::format("{}: header length {} is larger than the file ({} bytes after the length prefix)",
                                  file_name, header_len, file_size - 8));
  }
  if (header_len > file_prefix.size() - 8) {
    return make_error(fmt::format("{}: header ({} bytes) extends past the bytes read", file_name, header_len));
  }

  const std::string_view text(reinterpret_cast<const char*>(file_prefix.data() + 8), size_t(header_len));
  const JsonDoc parsed = parse_json_doc(text, /*find_duplicate_keys=*/true);
  if (!parsed.parse_error.empty()) {
    return make_error(fmt::format("{}: header is not valid JSON ({})", file_name, parsed.parse_error));
  }
  if (parsed.too_deep) return make_error(fmt::format("{}: header is {}", file_name, parsed.error()));
  if (!parsed.duplicate_key.empty()) {
    const std::string key = printable(parsed.duplicate_key);
    return make_error(parsed.duplicate_depth == 1
                          ? fmt::format("{}: tensor '{}': appears twice in the header", file_name, key)
                          : fmt::format("{}: key '{}' appears twice in one header object", file_name, key));
  }
  if (!parsed.value.is_object()) return make_error(fmt::format("{}: header is not a JSON object", file_name));

  ParsedHeader out;
  out.data_start = size_t(8 + header_len);
  const uint64_t data_size = file_size - out.data_start;
  for (const auto& [name, entry] : parsed.value.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return make_error(fmt::format("{}: \"__metadata__\" is not a JSON object", file_name));
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return make_error(
              fmt::format("{}: \"__metadata__\" value of '{}' is not a string", file_name, printable(key)));
        }
        out.metadata.emplace(key, value.get<std::string>());
      }
      continue;
    }
    DSA_TRY(tensor, parse_tensor_entry(file_name, name, entry, out.data_start, data_size));
    out.tensors.push_back(std::move(tensor));
  }

  // No two tensors may share bytes. Empty tensors own no bytes and cannot overlap.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : out.tensors)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    if (prev.offset + prev.nbytes > cur.offset) {
      const size_t d = out.data_start;
      return make_error(fmt::format("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' at [{}, {}]", file_name,
                                    printable(cur.name), cur.offset - d, cur.offset - d + cur.nbytes,
                                    printable(prev.name), prev.offset - d, prev.offset - d + prev.nbytes));
    }
  }
  return out;
}

// ---- mmapped files -----------------------------------------------------------------------------

class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> open(const std::filesystem::path& path) {
    DSA_TRY(fd, open_regular_file(path, "safetensors file"));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return make_error(fmt::format("{}: cannot stat: {}", path.string(), std::strerror(err)));
    }
    auto file = std::unique_ptr<MappedFile>(new MappedFile());
    file->size_ = size_t(st.st_size);
    if (file->size_ > 0) {
      void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        return make_error(fmt::format("{}: mmap failed: {}", path.string(), std::strerror(err)));
      }
      file->data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps the file alive
    return file;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// ---- checkpoint --------------------------------------------------------------------------------

Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// weight_map of model.safetensors.index.json: tensor name -> shard file name (relative to the dir).
Result<std::map<std::string, std::string>> read_index(const std::filesystem::path& index_path) {
  const std::string where = index_path.string();
  DSA_TRY(text, read_text_file(index_path, "shard index"));
  const JsonDoc parsed = parse_json_doc(text, /*find_duplicate_keys=*/true);
  if (!parsed.ok()) return make_error(fmt::format("{}: {}", where, parsed.error()));
  if (!parsed.duplicate_key.empty()) {
    return make_error(fmt::format("{}: key '{}' appears twice", where, printable(parsed.duplicate_key)));
  }
  if (!parsed.value.is_object() || !parsed.value.contains("weight_map") || !parsed.value["weight_map"].is_object()) {
    return make_error(fmt::format("{}: no \"weight_map\" object", where));
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& [name, shard] : parsed.value["weight_map"].items()) {
    if (!shard.is_string()) {
      return make_error(fmt::format("{}: tensor '{}': shard is not a string", where, printable(name)));
    }
    const std::filesystem::path rel(shard.get<std::string>());
    const bool escapes = rel.empty() || rel.is_absolute() ||
                         std::any_of(rel.begin(), rel.end(), [](const auto& part) { return part == ".."; });
    if (escapes) {
      return make_error(fmt::format("{}: tensor '{}': shard '{}' is not a file name inside the checkpoint directory",
                                    where, printable(name), printable(rel.string())));
    }
    weight_map.emplace(name, rel.string());
  }
  if (weight_map.empty()) return make_error(fmt::format("{}: \"weight_map\" is empty", where));
  return weight_map;
}

}  // namespace

Result<Checkpoint> Checkpoint::open(const std::filesystem::path& path) {
  std::error_code ec;
  // A dangling symbolic link is present too: opening it then says what it is.
  const auto present = [&ec](const std::filesystem::path& p) {
    return std::filesystem::exists(std::filesystem::symlink_status(p, ec));
  };
  std::vector<std::filesystem::path> shards;
  std::optional<std::map<std::string, std::string>> weight_map;  // only for a sharded checkpoint
  std::filesystem::path index_path;
  if (std::filesystem::is_directory(path, ec)) {
    index_path = path / kIndexName;
    if (present(index_path)) {
      DSA_TRY(map, read_index(index_path));
      std::set<std::string> names;
      for (const auto& [tensor, shard] : map) {
        if (!names.insert(shard).second) continue;
        if (const std::string reason = not_regular_file_reason(path / shard); !reason.empty()) {
          return make_error(fmt::format("{}: shard '{}' (holding tensor '{}') {}", index_path.string(),
                                        printable(shard), printable(tensor), reason));
        }
      }
      for (const auto& n : names) shards.push_back(path / n);
      weight_map = std::move(map);
    } else if (present(path / kSingleName)) {
      shards.push_back(path / kSingleName);
    } else {
      return make_error(fmt::format("{}: no {} or {} in this directory", path.string(), kIndexName, kSingleName));
    }
  } else if (present(path)) {
    shards.push_back(path);
  } else {
    return make_error(fmt::format("{}: no such file or directory", path.string()));
  }

  Checkpoint ckpt;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string where = shards[s].string();
    DSA_TRY(file, MappedFile::open(shards[s]));
    const auto bytes = file->bytes();
    DSA_TRY(header, parse_safetensors_header(bytes, bytes.size(), where));
    for (auto& t : header.tensors) {
      if (const auto it = ckpt.by_name_.find(t.name); it != ckpt.by_name_.end()) {
        return make_error(fmt::format("{}: tensor '{}': also in {}", where, printable(t.name),
                                      ckpt.shard_paths_[size_t(ckpt.tensors_[it->second].shard)].string()));
      }
      if (weight_map) {
        const auto it = weight_map->find(t.name);
        if (it == weight_map->end()) {
          return make_error(
              fmt::format("{}: tensor '{}': not listed in {}", where, printable(t.name), index_path.string()));
        }
        if (path / it->second != shards[s]) {
          return make_error(fmt::format("{}: tensor '{}': {} maps it to '{}'", where, printable(t.name),
                                        index_path.string(), printable(it->second)));
        }
      }
      t.shard = int(s);
      t.data = bytes.data() + t.offset;
      ckpt.by_name_.emplace(t.name, ckpt.tensors_.size());
      ckpt.tensors_.push_back(std::move(t));
    }
    if (s == 0) ckpt.metadata_ = std::move(header.metadata);
    ckpt.files_.push_back(std::move(file));
    ckpt.shard_paths_.push_back(shards[s]);
  }
  if (weight_map) {
    for (const auto& [tensor, shard] : *weight_map) {
      if (!ckpt.by_name_.count(tensor)) {
        return make_error(fmt::format("{}: tensor '{}': listed in {} but the shard lacks it",
                                      printable((path / shard).string()), printable(tensor), index_path.string()));
      }
    }
  }
  return ckpt;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  const auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

// ---- reading values ----------------------------------------------------------------------------

Result<std::vector<float>> read_as_f32(const TensorInfo& t) {
  DSA_CHECK(t.data != nullptr, "the tensor belongs to an open Checkpoint");
  const size_t n = size_t(t.numel());
  std::vector<float> out(n);
  const auto* b = reinterpret_cast<const uint8_t*>(t.data);
  // Loads go through memcpy: safetensors offsets carry no alignment guarantee.
  auto load16 = [&](size_t i) {
    uint16_t v;
    std::memcpy(&v, b + 2 * i, 2);
    return v;
  };
  switch (t.dtype) {
    case DType::F32:
      if (n > 0) std::memcpy(out.data(), b, 4 * n);  // an empty vector may have no buffer
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = fp16_to_float(load16(i));
      break;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(load16(i));
      break;
    case DType::F8_E4M3:
      for (size_t i = 0; i < n; ++i) out[i] = fp8_e4m3_to_float(b[i]);
      break;
    case DType::F8_E5M2:
      for (size_t i = 0; i < n; ++i) out[i] = fp8_e5m2_to_float(b[i]);
      break;
    default:
      return make_error(fmt::format("tensor '{}': dtype {} cannot be read as floats (F32, F16, BF16, F8 only)", t.name,
                                    dtype_name(t.dtype)));
  }
  return out;
}

}  // namespace dsa
