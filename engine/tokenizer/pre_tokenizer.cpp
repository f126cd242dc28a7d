// DeepSeek-V3 pre-tokenizer stages on decoded code points. A stage matcher answers "does the
// pattern match at position p of piece [b, e), and where does the match end".
#include "engine/tokenizer/pre_tokenizer.hpp"

#include <cstdint>

#include "engine/tokenizer/unicode_tables.hpp"
#include "engine/tokenizer/utf8.hpp"

namespace dsa {

const std::string_view kDeepSeekV3SplitPatterns[3] = {
    "\\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};

namespace {

using namespace unicode;

struct Chars {
  std::vector<uint32_t> cp;      // code point, utf8::kInvalid for an invalid byte
  std::vector<uint8_t> flags;    // char_flags(cp)
  std::vector<size_t> offset;    // byte offset of each char, plus the text size at the end
};

Chars decode(std::string_view text) {
  Chars c;
  c.cp.reserve(text.size());
  c.flags.reserve(text.size());
  c.offset.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const utf8::Decoded d = utf8::decode_at(text, i);
    c.cp.push_back(d.cp);
    c.flags.push_back(char_flags(d.cp));
    c.offset.push_back(i);
    i += d.len;
  }
  c.offset.push_back(text.size());
  return c;
}

constexpr size_t kNoMatch = SIZE_MAX;

bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }
bool is_ascii_alpha(uint32_t cp) { return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z'; }
bool is_ascii_punct(uint32_t cp) {
  return (cp >= '!' && cp <= '/') || (cp >= ':' && cp <= '@') || (cp >= '[' && cp <= '`') ||
         (cp >= '{' && cp <= '~');
}
bool is_cjk(uint32_t cp) { return (cp >= 0x4E00 && cp <= 0x9FA5) || (cp >= 0x3040 && cp <= 0x30FF); }

// \p{N}{1,3}
size_t match_digits(const Chars& c, size_t p, size_t e) {
  if (!(c.flags[p] & kNumber)) return kNoMatch;
  size_t q = p + 1;
  while (q < e && q < p + 3 && (c.flags[q] & kNumber)) ++q;
  return q;
}

// [一-龥぀-ゟ゠-ヿ]+
size_t match_cjk(const Chars& c, size_t p, size_t e) {
  if (!is_cjk(c.cp[p])) return kNoMatch;
  size_t q = p + 1;
  while (q < e && is_cjk(c.cp[q])) ++q;
  return q;
}

// Stage 3, alternative by alternative.
size_t match_words(const Chars& c, size_t p, size_t e) {
  const auto run = [&](size_t q, auto&& in_class) {
    while (q < e && in_class(q)) ++q;
    return q;
  };
  const auto letter_or_mark = [&](size_t q) { return (c.flags[q] & (kLetter | kMark)) != 0; };
  const auto punct_or_symbol = [&](size_t q) { return (c.flags[q] & (kPunct | kSymbol)) != 0; };
  const auto space = [&](size_t q) { return (c.flags[q] & kSpace) != 0; };
  const uint32_t cp = c.cp[p];
  const bool has_next = p + 1 < e;

  // [!"#...~][A-Za-z]+
  if (is_ascii_punct(cp) && has_next && is_ascii_alpha(c.cp[p + 1]))
    return run(p + 1, [&](size_t q) { return is_ascii_alpha(c.cp[q]); });
  // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ : the optional char, else (backtracking) none.
  const bool optional_ok = !is_crlf(cp) && !(c.flags[p] & (kLetter | kPunct | kSymbol));
  if (optional_ok && has_next && letter_or_mark(p + 1)) return run(p + 1, letter_or_mark);
  if (letter_or_mark(p)) return run(p, letter_or_mark);
  // ' ?[\p{P}\p{S}]+[\r\n]*'
  const size_t ps = cp == ' ' && has_next && punct_or_symbol(p + 1) ? p + 1 : p;
  if (punct_or_symbol(ps)) return run(run(ps, punct_or_symbol), [&](size_t q) { return is_crlf(c.cp[q]); });
  if (!space(p)) return kNoMatch;
  const size_t space_end = run(p, space);
  // \s*[\r\n]+ : \s* gives back chars until a CR/LF follows; that CR/LF is the last one in the run.
  for (size_t q = space_end; q > p; --q)
    if (is_crlf(c.cp[q - 1])) return q;
  // \s+(?!\S) : at the piece end the look-ahead holds; before a non-space, \s+ gives back its last
  // char (if it has two or more) so that a space follows.
  if (space_end == e) return e;
  if (space_end - p >= 2) return space_end - 1;
  // \s+
  return space_end;
}

// Split with behavior Isolated: matches and the gaps between them all become pieces.
template <class Matcher>
void split_isolated(const Chars& c, const std::vector<Piece>& in, std::vector<Piece>& out, Matcher match) {
  out.clear();
  for (const Piece& piece : in) {
    size_t gap = piece.begin;
    for (size_t p = piece.begin; p < piece.end;) {
      const size_t q = match(c, p, piece.end);
      if (q == kNoMatch) {
        ++p;
        continue;
      }
      if (gap < p) out.push_back({gap, p});
      out.push_back({p, q});
      gap = p = q;
    }
    if (gap < piece.end) out.push_back({gap, piece.end});
  }
}

}  // namespace

std::vector<Piece> pre_tokenize(std::string_view text) {
  if (text.empty()) return {};
  const Chars c = decode(text);
  std::vector<Piece> a{{0, c.cp.size()}}, b;
  split_isolated(c, a, b, match_digits);
  split_isolated(c, b, a, match_cjk);
  split_isolated(c, a, b, match_words);
  for (Piece& piece : b) piece = {c.offset[piece.begin], c.offset[piece.end]};
  return b;
}

}  // namespace dsa
