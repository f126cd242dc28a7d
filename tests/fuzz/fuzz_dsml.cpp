// libFuzzer target for the DSML parser (clang: built by tests/CMakeLists.txt as fuzz_dsml).
//   ./fuzz_dsml -max_len=4096 corpus/
// The first byte picks thinking mode and the chunking; the rest is the model's reply. Stops on any
// crash or on a broken property of tests/unit/chat/dsml_properties.hpp (streamed == whole, sink
// deltas add up, arguments are a JSON object). test_chat runs a bounded version with any compiler.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tests/unit/chat/dsml_properties.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool thinking = (data[0] & 1) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string problem = dsa::test::check_dsml_properties(text, thinking, data[0] >> 1);
  if (!problem.empty()) {
    std::fprintf(stderr, "fuzz_dsml: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
