// UTF-8 decoding per the Unicode standard's well-formed byte sequences (table 3-7): no overlongs,
// no surrogates, nothing above U+10FFFF.
#include "engine/tokenizer/utf8.hpp"

namespace dsa::utf8 {
namespace {

// Valid range of the second byte given the lead byte; later bytes are always 0x80..0xBF.
struct LeadInfo {
  uint32_t len;
  uint8_t lo, hi;
};

LeadInfo lead_info(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from s[i] form a valid (possibly truncated) prefix of a sequence, and whether the
// whole sequence is there.
struct Prefix {
  uint32_t n_valid;
  bool complete;
};

Prefix valid_prefix(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  const LeadInfo lead = lead_info(b0);
  if (lead.len == 0) return {0, false};
  if (lead.len == 1) return {1, true};
  uint32_t n = 1;
  for (; n < lead.len && i + n < s.size(); ++n) {
    const auto b = static_cast<uint8_t>(s[i + n]);
    const uint8_t lo = n == 1 ? lead.lo : 0x80, hi = n == 1 ? lead.hi : 0xBF;
    if (b < lo || b > hi) return {n, false};
  }
  return {n, n == lead.len};
}

}  // namespace

Decoded decode_at(std::string_view s, size_t i) {
  const Prefix p = valid_prefix(s, i);
  if (!p.complete) return {kInvalid, 1};
  const auto* u = reinterpret_cast<const uint8_t*>(s.data() + i);
  switch (p.n_valid) {
    case 1: return {u[0], 1};
    case 2: return {(u[0] & 0x1Fu) << 6 | (u[1] & 0x3Fu), 2};
    case 3: return {(u[0] & 0x0Fu) << 12 | (u[1] & 0x3Fu) << 6 | (u[2] & 0x3Fu), 3};
    default: return {(u[0] & 0x07u) << 18 | (u[1] & 0x3Fu) << 12 | (u[2] & 0x3Fu) << 6 | (u[3] & 0x3Fu), 4};
  }
}

size_t complete_prefix(std::string_view s) {
  // Only the last 3 bytes can start an unfinished sequence.
  const size_t from = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = from; i < s.size(); ++i) {
    const Prefix p = valid_prefix(s, i);
    if (p.n_valid > 0 && !p.complete && i + p.n_valid == s.size()) return i;
  }
  return s.size();
}

std::string to_valid_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Prefix p = valid_prefix(s, i);
    if (p.complete) {
      out.append(s.substr(i, p.n_valid));
      i += p.n_valid;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD for the maximal invalid subpart
      i += p.n_valid > 0 ? p.n_valid : 1;
    }
  }
  return out;
}

}  // namespace dsa::utf8
