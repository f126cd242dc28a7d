// DeepSeek-V3's real tokenizer.json and the test corpus (tests/fixtures/tokenizer/, gzip-compressed).
#pragma once
#include <doctest/doctest.h>

#include "tests/test_support.hpp"
#include "tests/unit/tokenizer/tokenizer_test_support.hpp"

namespace dsa::test {

inline std::string gunzip(const std::filesystem::path& path) {
  const CommandResult r = run_command("gzip -dc '" + path.string() + "'");
  REQUIRE_MESSAGE(r.exit_code == 0, "cannot decompress " << path);
  return r.output;
}

// Loaded once per test process.
inline const Tokenizer& deepseek_v3() {
  static const Tokenizer tok = [] {
    const auto path = fixtures_dir() / "tokenizer" / "deepseek-v3-tokenizer.json.gz";
    auto r = Tokenizer::from_json_text(gunzip(path), path.string());
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    return std::move(r).value();
  }();
  return tok;
}

}  // namespace dsa::test
