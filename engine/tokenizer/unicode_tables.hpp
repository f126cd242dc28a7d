// Unicode character classes for the DeepSeek-V3 pre-tokenizer: the general-category groups
// \p{L} \p{N} \p{P} \p{S} \p{M} and Oniguruma's \s (White_Space), as HF tokenizers' regex engine
// sees them. The range tables are generated (unicode_tables.cpp); char_flags() is the fast lookup.
#pragma once
#include <array>
#include <cstdint>

namespace dsa::unicode {

// Bits of char_flags(). A code point is in at most one of L/N/P/S/M; kSpace is independent.
enum : uint8_t {
  kLetter = 1 << 0,   // \p{L}
  kNumber = 1 << 1,   // \p{N}
  kPunct = 1 << 2,    // \p{P}
  kSymbol = 1 << 3,   // \p{S}
  kMark = 1 << 4,     // \p{M}
  kSpace = 1 << 5,    // \s
};

struct CategoryRange {
  uint32_t lo, hi;  // inclusive
  uint8_t cls;      // 1 L, 2 N, 3 P, 4 S, 5 M (the generator's numbering)
};
struct CodeRange {
  uint32_t lo, hi;  // inclusive
};

extern const std::array<CategoryRange, 1504> kCategoryRanges;  // sorted, disjoint
extern const std::array<CodeRange, 10> kWhiteSpaceRanges;

// Flags of code point cp (0 for cp > U+10FFFF, e.g. the marker of an invalid UTF-8 byte).
uint8_t char_flags(uint32_t cp);

}  // namespace dsa::unicode
