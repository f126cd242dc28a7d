// char_flags(): one byte of class flags per code point, expanded once from the generated ranges.
#include <vector>

#include "engine/tokenizer/unicode_tables.hpp"

namespace dsa::unicode {
namespace {

constexpr uint32_t kNumCodePoints = 0x110000;

std::vector<uint8_t> build_flags() {
  constexpr uint8_t kFlagOfClass[6] = {0, kLetter, kNumber, kPunct, kSymbol, kMark};
  std::vector<uint8_t> flags(kNumCodePoints, 0);
  for (const CategoryRange& r : kCategoryRanges)
    for (uint32_t cp = r.lo; cp <= r.hi; ++cp) flags[cp] = kFlagOfClass[r.cls];
  for (const CodeRange& r : kWhiteSpaceRanges)
    for (uint32_t cp = r.lo; cp <= r.hi; ++cp) flags[cp] |= kSpace;
  return flags;
}

}  // namespace

uint8_t char_flags(uint32_t cp) {
  static const std::vector<uint8_t> flags = build_flags();
  return cp < kNumCodePoints ? flags[cp] : 0;
}

}  // namespace dsa::unicode
