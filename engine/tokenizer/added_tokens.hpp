// Matching of added tokens in template text, as HF's AddedVocabulary does it: leftmost-longest
// matches of the tokens with normalized=false first, then of those with normalized=true inside the
// text left between (the DeepSeek tokenizer has no normalizer, so normalizing is the identity).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsa {

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;
  bool normalized;
};

// A split of text: either a matched added token (id >= 0) or plain text to pre-tokenize (id == -1).
struct TextSegment {
  std::string_view text;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);
  // The passes hold views into contents_: a copy would point into the original. Moves keep them.
  AddedTokenMatcher(const AddedTokenMatcher&) = delete;
  AddedTokenMatcher(AddedTokenMatcher&&) = default;
  std::vector<TextSegment> split(std::string_view text) const;

 private:
  // One pass: tokens of one normalized flag, looked up by content for each distinct length.
  struct Pass {
    std::unordered_map<std::string_view, int32_t> id_of;
    std::vector<size_t> lengths;  // distinct content lengths, longest first
    bool first_byte[256] = {};
  };
  static void split_pass(const Pass& pass, std::string_view text, std::vector<TextSegment>& out);

  std::vector<std::string> contents_;  // owns the strings the passes point into
  Pass passes_[2];
};

}  // namespace dsa
