// libFuzzer target for the tokenizer: any bytes, with and without special-token matching, through
// the tiny tokenizer of the unit tests; aborts on the first property violation.
#include <cstdio>
#include <cstdlib>

#include "tests/unit/tokenizer/tokenizer_test_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dsa::Tokenizer tok = [] {
    auto r = dsa::Tokenizer::from_json_text(dsa::test::tiny_tokenizer_json().dump(), "tiny.json");
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.error().message.c_str());
      std::abort();
    }
    return std::move(r).value();
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (bool allow_special : {false, true}) {
    const std::string failure = dsa::test::check_any_input(tok, input, allow_special);
    if (!failure.empty()) {
      std::fprintf(stderr, "tokenizer: %s\n", failure.c_str());
      std::abort();
    }
  }
  return 0;
}
