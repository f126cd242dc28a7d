// The DeepSeek-V3 pre-tokenizer: three HF `Split` stages (behavior Isolated), each applied to the
// pieces the previous stage left, then ByteLevel (no prefix space, no regex). The stage patterns are
// matched by hand-written matchers with Oniguruma's semantics (leftmost match, alternatives in
// order, greedy with backtracking):
//   1. \p{N}{1,3}
//   2. [一-龥぀-ゟ゠-ヿ]+
//   3. [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//      ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Each stage sees only its piece, so a look-ahead never crosses a boundary an earlier stage made.
// Each invalid UTF-8 byte is a one-byte character of no class (in no \p{..}, not \s).
#pragma once
#include <string_view>
#include <vector>

namespace dsa {

struct Piece {
  size_t begin, end;  // byte offsets into the pre-tokenized text
};

// The stage patterns, verbatim as in DeepSeek-V3's tokenizer.json, in order.
extern const std::string_view kDeepSeekV3SplitPatterns[3];

// Splits text into pieces (in order, covering all of text, none empty).
std::vector<Piece> pre_tokenize(std::string_view text);

}  // namespace dsa
