// Shared by the runtime tests: the tiny FP8 checkpoint and its golden greedy run.
#pragma once
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/model/model.hpp"
#include "tests/test_support.hpp"

namespace dsa::test {

inline std::filesystem::path tiny_fp8_dir() { return fixtures_dir() / "engine" / "tiny-fp8"; }

struct GoldenRun {
  std::vector<int32_t> prompt;      // 60 ids
  std::vector<int32_t> decode_ids;  // the greedy continuation: argmax after the prompt, then 20 steps
};

inline GoldenRun golden_fp8() {
  const auto j = nlohmann::json::parse(read_text(fixtures_dir() / "engine" / "golden_fp8.json"));
  return {j.at("prompt").get<std::vector<int32_t>>(), j.at("decode_ids").get<std::vector<int32_t>>()};
}

inline std::unique_ptr<Model> load_tiny(AttentionMode mode = AttentionMode::sparse) {
  auto m = Model::load(tiny_fp8_dir(), mode);
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().message));
  return std::move(*m);
}

}  // namespace dsa::test
