// Leftmost-longest added-token matching by direct lookup: at each position, try the distinct token
// lengths from the longest down.
#include "engine/tokenizer/added_tokens.hpp"

#include <algorithm>

namespace dsa {

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  contents_.reserve(tokens.size());
  for (const AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    Pass& pass = passes_[t.normalized ? 1 : 0];
    const std::string& content = contents_.emplace_back(t.content);
    pass.id_of.emplace(content, t.id);
    pass.first_byte[static_cast<uint8_t>(content[0])] = true;
    if (std::find(pass.lengths.begin(), pass.lengths.end(), content.size()) == pass.lengths.end())
      pass.lengths.push_back(content.size());
  }
  for (Pass& pass : passes_) std::sort(pass.lengths.rbegin(), pass.lengths.rend());
}

void AddedTokenMatcher::split_pass(const Pass& pass, std::string_view text, std::vector<TextSegment>& out) {
  size_t gap = 0;
  for (size_t i = 0; i < text.size();) {
    int32_t id = -1;
    size_t len = 0;
    if (pass.first_byte[static_cast<uint8_t>(text[i])]) {
      for (size_t l : pass.lengths) {
        if (l > text.size() - i) continue;
        const auto it = pass.id_of.find(text.substr(i, l));
        if (it != pass.id_of.end()) {
          id = it->second;
          len = l;
          break;
        }
      }
    }
    if (id < 0) {
      ++i;
      continue;
    }
    if (gap < i) out.push_back({text.substr(gap, i - gap), -1});
    out.push_back({text.substr(i, len), id});
    gap = i += len;
  }
  if (gap < text.size()) out.push_back({text.substr(gap), -1});
}

std::vector<TextSegment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSegment> first, out;
  split_pass(passes_[0], text, first);
  for (const TextSegment& s : first) {
    if (s.id >= 0)
      out.push_back(s);
    else
      split_pass(passes_[1], s.text, out);
  }
  return out;
}

}  // namespace dsa
