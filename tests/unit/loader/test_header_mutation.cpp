// Bounded random mutation of a valid file's length prefix and header bytes (a deterministic
// stand-in for tests/fuzz/fuzz_safetensors.cpp that runs with any compiler): the parser must never
// crash and must either fail with one clean line or return ranges inside the data section.
#include <doctest/doctest.h>

#include <random>

#include "tests/unit/loader/header_properties.hpp"
#include "tests/unit/loader/st_builder.hpp"

using namespace dsa::test;

TEST_CASE("parse_safetensors_header survives 20k mutations of a valid file") {
  const std::vector<StTensor> tensors = {
      {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "F8_E4M3", {6, 5}, std::string(30, '\x11')},
      {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv", "F32", {1, 1}, std::string(4, '\0')},
      {"model.norm.weight", "BF16", {3}, std::string(6, '\x3f')},
      {"lm_head.weight", "I64", {1, 2}, std::string(16, '\x01')}};
  const std::string valid = st_file(tensors, {{"format", "pt"}});
  const size_t header_end = valid.size() - 56;
  REQUIRE(check_header_properties(std::as_bytes(std::span(valid.data(), valid.size()))).empty());

  const char* tokens[] = {"0", "-1", "99999999999999999999", "1e3", "\"", "{", "}", "[", "]", ",", ":",
                          "\"F32\"", "\"BOOL\"", "\"data_offsets\"", "\"shape\"", "null", "\\u0000", "\xff", "1.5"};
  std::mt19937_64 rng(0x5afe7e45);
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string f = valid;
    const int n_edits = 1 + int(rng() % 4);
    for (int e = 0; e < n_edits; ++e) {
      const size_t pos = rng() % std::min(header_end, f.size());  // the length prefix or the header text
      switch (rng() % 6) {
        case 0: f[pos] = char(rng() & 0xff); break;
        case 1: f[pos] = char(f[pos] ^ (1 << (rng() % 8))); break;
        case 2: if (pos >= 8) f[pos] = char('0' + rng() % 10); break;
        case 3: if (pos >= 8) f.erase(pos, 1 + rng() % 3); break;
        case 4: if (pos >= 8) f.insert(pos, tokens[rng() % std::size(tokens)]); break;
        case 5: f.resize(rng() % f.size()); break;  // truncation anywhere
      }
      if (f.empty()) break;
    }
    // Half of the time keep the length prefix consistent with the (edited) header text.
    if (rng() % 2 && f.size() >= 8) {
      const uint64_t len = f.size() >= 64 ? f.size() - 64 : 0;  // the data section is the last 56 bytes
      for (int i = 0; i < 8; ++i) f[size_t(i)] = char((len >> (8 * i)) & 0xff);
    }
    const auto bytes = std::as_bytes(std::span(f.data(), f.size()));
    const std::string problem = check_header_properties(bytes);
    if (!problem.empty()) FAIL("mutation " << iter << ": " << problem);
    (dsa::parse_safetensors_header(bytes, bytes.size(), "x").ok() ? accepted : rejected)++;
  }
  MESSAGE("accepted " << accepted << ", rejected " << rejected);
  CHECK(accepted > 0);  // the mutations must not all be trivially fatal
  CHECK(rejected > 0);
}
