// The promise of parse_safetensors_header for any bytes at all, shared by the bounded mutation test
// and the libFuzzer target (tests/fuzz/fuzz_safetensors.cpp): it returns either an error that is
// one non-empty line starting with the file name, or tensors whose byte ranges lie inside the data
// section, match dtype x shape, have unique names and do not overlap.
#pragma once
#include <algorithm>
#include <cstddef>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/loader/safetensors.hpp"

namespace dsa::test {

// Empty when the property holds, else what broke.
inline std::string check_header_properties(std::span<const std::byte> file) {
  const std::string file_name = "fuzz.safetensors";
  auto parsed = parse_safetensors_header(file, file.size(), file_name);
  if (!parsed.ok()) {
    const std::string& m = parsed.error().message;
    if (m.rfind(file_name + ": ", 0) != 0) return "error does not start with the file name: " + m;
    if (m.find('\n') != std::string::npos) return "error spans several lines: " + m;
    return "";
  }
  const ParsedHeader& h = *parsed;
  if (h.data_start < 8 || h.data_start > file.size()) return "data_start outside the file";
  std::set<std::string> names;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const auto& t : h.tensors) {
    if (!names.insert(t.name).second) return "duplicate tensor " + t.name;
    if (t.offset < h.data_start || t.offset > file.size() || t.nbytes > file.size() - t.offset) {
      return "tensor " + t.name + " outside the data section";
    }
    size_t n = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) return "negative dimension in " + t.name;
      n *= size_t(d);
    }
    if (n != t.nbytes) return "size of " + t.name + " does not match dtype x shape";
    if (t.nbytes > 0) ranges.emplace_back(t.offset, t.offset + t.nbytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i - 1].second > ranges[i].first) return "overlapping tensors accepted";
  return "";
}

}  // namespace dsa::test
