// Builds safetensors files byte by byte for the loader tests: the header JSON is written as text
// (so tests can break it on purpose) and the data section is raw bytes.
#pragma once
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "engine/api/result.hpp"
#include "tests/test_support.hpp"

namespace dsa::test {

struct StTensor {
  std::string name;
  std::string dtype;  // the safetensors spelling, written as given
  std::vector<int64_t> shape;
  std::string bytes;  // the raw little-endian data
};

template <class T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

inline std::string shape_json(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s.append(",");
    s.append(std::to_string(shape[i]));
  }
  s.append("]");
  return s;
}

// The 8-byte little-endian length, the header text, the data section.
inline std::string st_file_raw(const std::string& header, const std::string& data, uint64_t header_len) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((header_len >> (8 * i)) & 0xff);
  return out + header + data;
}
inline std::string st_file_raw(const std::string& header, const std::string& data) {
  return st_file_raw(header, data, header.size());
}

// Header entries in the given order with consecutive data_offsets, plus an optional metadata map.
inline std::string st_header(const std::vector<StTensor>& tensors,
                             const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  auto quoted = [](std::string& out, const std::string& s) { out.append("\"").append(s).append("\""); };
  std::string h = "{";
  if (!metadata.empty()) {
    h.append("\"__metadata__\":{");
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (i) h.append(",");
      quoted(h, metadata[i].first);
      h.append(":");
      quoted(h, metadata[i].second);
    }
    h.append("}");
  }
  size_t offset = 0;
  for (const auto& t : tensors) {
    if (h.size() > 1) h.append(",");
    quoted(h, t.name);
    h.append(":{\"dtype\":");
    quoted(h, t.dtype);
    h.append(",\"shape\":").append(shape_json(t.shape)).append(",\"data_offsets\":[");
    h.append(std::to_string(offset)).append(",").append(std::to_string(offset + t.bytes.size())).append("]}");
    offset += t.bytes.size();
  }
  h.append("}");
  return h;
}

inline std::string st_file(const std::vector<StTensor>& tensors,
                           const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  std::string data;
  for (const auto& t : tensors) data += t.bytes;
  return st_file_raw(st_header(tensors, metadata), data);
}

// The error text of a Result, or "" when it holds a value (safe inside doctest's *_MESSAGE macros,
// which may evaluate the message even when the check passes).
template <class T>
std::string error_of(const Result<T>& r) {
  return r.ok() ? std::string() : r.error().message;
}

inline std::filesystem::path write_file(const std::filesystem::path& p, const std::string& bytes) {
  write_text(p, bytes);
  return p;
}

}  // namespace dsa::test
