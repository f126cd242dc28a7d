// GPT-2 byte-level character map.
#include "engine/tokenizer/byte_level.hpp"

#include "engine/tokenizer/utf8.hpp"

namespace dsa::byte_level {
namespace {

bool maps_to_itself(uint32_t b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

std::string encode_utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {  // the map only uses code points below U+0800
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Code point standing for each byte, and the inverse (-1: not a byte character).
struct Maps {
  std::array<uint32_t, 256> cp_of_byte{};
  std::array<int16_t, 0x200> byte_of_cp{};
};

const Maps& maps() {
  static const Maps m = [] {
    Maps m;
    m.byte_of_cp.fill(-1);
    uint32_t next = 0x100;
    for (uint32_t b = 0; b < 256; ++b) {
      m.cp_of_byte[b] = maps_to_itself(b) ? b : next++;
      m.byte_of_cp[m.cp_of_byte[b]] = static_cast<int16_t>(b);
    }
    return m;
  }();
  return m;
}

}  // namespace

const std::array<std::string, 256>& byte_chars() {
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> c;
    for (uint32_t b = 0; b < 256; ++b) c[b] = encode_utf8(maps().cp_of_byte[b]);
    return c;
  }();
  return chars;
}

std::optional<std::string> to_bytes(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const utf8::Decoded d = utf8::decode_at(token, i);
    if (d.cp >= maps().byte_of_cp.size() || maps().byte_of_cp[d.cp] < 0) return std::nullopt;
    out += static_cast<char>(maps().byte_of_cp[d.cp]);
    i += d.len;
  }
  return out;
}

}  // namespace dsa::byte_level
