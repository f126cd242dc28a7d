// GPT-2's byte <-> unicode map used by HF's ByteLevel pre-tokenizer and decoder: printable bytes
// ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map to the same code point, the other 68 bytes to U+0100.. in
// byte order. Vocabulary entries are written in these characters ("Ġ" is a space).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsa::byte_level {

// UTF-8 spelling of the character that stands for each byte.
const std::array<std::string, 256>& byte_chars();

// The bytes a token spelled in byte-level characters stands for; nullopt when a character is
// outside the map (then HF's decoder emits the token's own UTF-8, as for added tokens).
std::optional<std::string> to_bytes(std::string_view token);

}  // namespace dsa::byte_level
