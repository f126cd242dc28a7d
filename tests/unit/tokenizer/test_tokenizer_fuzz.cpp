// Bounded mutation run: random and mutated inputs (invalid UTF-8, spliced special tokens, long
// runs) through the real DeepSeek-V3 tokenizer and the tiny one. The same check is the libFuzzer
// target's (tests/fuzz/fuzz_tokenizer.cpp).
#include <doctest/doctest.h>

#include <cstdlib>

#include <random>

#include "tests/unit/tokenizer/deepseek_v3_fixture.hpp"

namespace dsa::test {
namespace {

const std::vector<std::string> kSeeds = {
    "Hello, world! 12345 深度求索 ひらがな 한국어 Привет",
    "def f(x):\r\n\treturn x  # comment\n\n",
    "👨‍👩‍👧‍👦 🏳️‍🌈 e\xCC\x81 \xE2\x80\x8D\xE2\x80\x8D ...!!! \xC2\xA0\xE3\x80\x80",
    "<｜User｜>hi<｜Assistant｜><think>x</think>｜DSML｜<｜end▁of▁sentence｜>",
    "\xFF\xFE\xC0\xAF\xED\xA0\x80\xF4\x90\x80\x80",
};
const std::vector<std::string> kInserts = {"<｜User｜>", "<think>", "｜", "\r\n", " ", "\xF0\x9F", "1", "深",
                                           "\xCC\x81", "'s", "\t", "<｜", "\xE2\x80\xA8"};

std::string mutate(std::string s, std::mt19937& rng) {
  const auto pick = [&](size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  for (int n_ops = 1 + static_cast<int>(pick(4)); n_ops > 0; --n_ops) {
    const size_t at = pick(s.size() + 1);
    switch (pick(6)) {
      case 0: if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256)); break;
      case 1: s.insert(at, 1, static_cast<char>(pick(256))); break;
      case 2: s.insert(at, kInserts[pick(kInserts.size())]); break;
      case 3: s.erase(at, pick(8)); break;
      case 4: s.insert(at, std::string(1 + pick(300), " a1.\n\xE4"[pick(6)])); break;
      default: s.insert(at, s.substr(pick(s.size() + 1), pick(16))); break;
    }
  }
  return s;
}

TEST_CASE("random and mutated inputs keep their bytes, decode and stream consistently") {
  const Tokenizer& real = deepseek_v3();
  auto tiny_r = Tokenizer::from_json_text(tiny_tokenizer_json().dump(), "tiny.json");
  REQUIRE(tiny_r.ok());
  const Tokenizer& tiny = *tiny_r;
  std::mt19937 rng(1234);
  int n_failed = 0;
  const char* scale_env = std::getenv("DSA_FUZZ_SCALE");  // multiplies the case count, as for the DSML fuzz
  const int n_cases = 20000 * (scale_env && std::atoi(scale_env) > 0 ? std::atoi(scale_env) : 1);
  for (int i = 0; i < n_cases && n_failed < 5; ++i) {
    std::string input = mutate(kSeeds[i % kSeeds.size()], rng);
    if (i % 10 == 0) {  // pure random bytes
      input.resize(rng() % 64);
      for (char& c : input) c = static_cast<char>(rng());
    }
    const bool allow_special = (i / 2) % 2 == 0;
    const std::string failure = check_any_input(i % 4 == 3 ? tiny : real, input, allow_special);
    if (!failure.empty()) {
      ++n_failed;
      CHECK_MESSAGE(false, failure << " for input #" << i);
    }
  }
  CHECK(n_failed == 0);
}

}  // namespace
}  // namespace dsa::test
