// Reads tests/fixtures/loader/peer.safetensors, written by the reference safetensors library
// (tests/golden/make_safetensors_peer.py), and compares every tensor with the values NumPy and
// ml_dtypes computed: dtypes, shapes, metadata, every value exactly, and the FP8 pair dequantised.
#include <doctest/doctest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/loader/fp8_blocks.hpp"
#include "engine/loader/safetensors.hpp"
#include "tests/unit/loader/st_builder.hpp"

using namespace dsa;
using json = nlohmann::json;

namespace {

std::string fnv1a64(const std::vector<float>& values) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto* b = reinterpret_cast<const uint8_t*>(values.data());
  for (size_t i = 0; i < values.size() * sizeof(float); ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

template <class T>
std::vector<int64_t> ints_of(const TensorInfo& t) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < t.numel(); ++i) {
    T v;
    std::memcpy(&v, t.data + i * int64_t(sizeof(T)), sizeof(T));
    out.push_back(int64_t(v));
  }
  return out;
}

std::vector<int64_t> read_ints(const TensorInfo& t) {
  switch (t.dtype) {
    case DType::I8: return ints_of<int8_t>(t);
    case DType::I32: return ints_of<int32_t>(t);
    case DType::I64: return ints_of<int64_t>(t);
    case DType::U8: return ints_of<uint8_t>(t);
    case DType::BOOL: return ints_of<uint8_t>(t);
    default: FAIL("not an integer dtype: " << dtype_name(t.dtype)); return {};
  }
}

// Bitwise equality, so -0.0 and +0.0 differ.
int64_t count_mismatches(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < got.size(); ++i) n += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
  return n;
}

}  // namespace

TEST_CASE("a file written by the reference safetensors library reads back exactly") {
  const auto dir = test::fixtures_dir() / "loader";
  const json expected = json::parse(test::read_text(dir / "peer_expected.json"));
  auto ckpt = Checkpoint::open(dir / "peer.safetensors");
  REQUIRE_MESSAGE(ckpt.ok(), test::error_of(ckpt));

  CHECK(ckpt->tensors().size() == expected["tensors"].size());
  for (const auto& [key, value] : expected["metadata"].items()) CHECK(ckpt->metadata().at(key) == value.get<std::string>());
  CHECK(ckpt->metadata().size() == expected["metadata"].size());

  for (const auto& [name, want] : expected["tensors"].items()) {
    CAPTURE(name);
    const TensorInfo* t = ckpt->find(name);
    REQUIRE(t != nullptr);
    CHECK(std::string(dtype_name(t->dtype)) == want["dtype"].get<std::string>());
    CHECK(t->shape == want["shape"].get<std::vector<int64_t>>());
    CHECK(t->nbytes == size_t(t->numel()) * dtype_size(t->dtype));
    const bool is_float = t->dtype == DType::F32 || t->dtype == DType::F16 || t->dtype == DType::BF16 ||
                          t->dtype == DType::F8_E4M3;
    if (!is_float) {
      CHECK(read_ints(*t) == want["values"].get<std::vector<int64_t>>());
      continue;
    }
    auto got = read_as_f32(*t);
    REQUIRE_MESSAGE(got.ok(), test::error_of(got));
    if (want.contains("values")) {
      std::vector<float> values;
      for (const auto& v : want["values"]) values.push_back(v.get<float>());  // float32 values: exact
      CHECK(count_mismatches(*got, values) == 0);
    } else {
      CHECK(fnv1a64(*got) == want["f32_fnv1a64"].get<std::string>());
    }
  }

  for (const auto& pair : expected["fp8_pairs"]) {
    const TensorInfo* w = ckpt->find(pair["weight"].get<std::string>());
    const TensorInfo* s = ckpt->find(pair["scale_inv"].get<std::string>());
    REQUIRE(w != nullptr);
    REQUIRE(s != nullptr);
    REQUIRE(check_fp8_pair(*w, *s).ok());
    CHECK(count_non_pow2_scales(*s) == 0);
    const int64_t n = w->shape[0], k = w->shape[1];
    std::vector<float> all(size_t(n * k));
    dequant_fp8_rows(*w, *s, 0, n, all.data());

    const auto row_sums = pair["dequant_row_sums"].get<std::vector<double>>();
    REQUIRE(int64_t(row_sums.size()) == n);
    int64_t bad_rows = 0;
    for (int64_t i = 0; i < n; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += all[size_t(i * k + j)];
      if (sum != row_sums[size_t(i)]) {
        if (bad_rows++ < 5) MESSAGE("row " << i << ": sum " << sum << " expected " << row_sums[size_t(i)]);
      }
    }
    CHECK(bad_rows == 0);
    const auto first = pair["dequant_first_row"].get<std::vector<float>>();
    const auto last = pair["dequant_last_row"].get<std::vector<float>>();
    CHECK(count_mismatches({all.begin(), all.begin() + k}, first) == 0);
    CHECK(count_mismatches({all.end() - k, all.end()}, last) == 0);
    CHECK(fnv1a64(all) == pair["dequant_fnv1a64"].get<std::string>());

    // The last, partial block of rows on its own (rows 512..575 use scale row 4).
    std::vector<float> tail(size_t((n - 512) * k));
    dequant_fp8_rows(*w, *s, 512, n - 512, tail.data());
    CHECK(count_mismatches(tail, {all.begin() + 512 * k, all.end()}) == 0);
  }
}
