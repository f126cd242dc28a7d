// libFuzzer target for the safetensors header parser (clang: built by tests/CMakeLists.txt as
// fuzz_safetensors).
//   ./fuzz_safetensors -max_len=4096 corpus/
// The input is a whole file: the 8-byte length prefix, the JSON header, the data section. Stops on
// any crash or on a broken property of tests/unit/loader/header_properties.hpp (a clean one-line
// error, or ranges inside the data section that match dtype x shape and do not overlap).
// test_loader runs a bounded mutation version with any compiler.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "tests/unit/loader/header_properties.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto bytes = std::as_bytes(std::span(data, size));
  const std::string problem = dsa::test::check_header_properties(bytes);
  if (!problem.empty()) {
    std::fprintf(stderr, "fuzz_safetensors: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
