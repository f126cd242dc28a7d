// UTF-8 helpers for the tokenizer: lenient decoding (invalid bytes become one-byte units, so every
// byte string can be tokenized and its bytes survive), and lossy conversion to valid UTF-8 with the
// same replacement rule as Rust's String::from_utf8_lossy (the peer's decode).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace dsa::utf8 {

inline constexpr uint32_t kInvalid = 0xFFFFFFFF;  // code point reported for an invalid byte

struct Decoded {
  uint32_t cp;   // kInvalid for a byte that does not start a valid sequence
  uint32_t len;  // bytes consumed, >= 1
};

// Decodes the sequence at s[i] (i < s.size()).
Decoded decode_at(std::string_view s, size_t i);

// Length of the longest prefix of s that is valid UTF-8 or contains only whole invalid units, i.e.
// everything except a trailing incomplete-but-possibly-valid sequence (at most 3 bytes).
size_t complete_prefix(std::string_view s);

// s with each maximal invalid subpart replaced by U+FFFD.
std::string to_valid_lossy(std::string_view s);

}  // namespace dsa::utf8
