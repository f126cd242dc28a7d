// Head+tail truncation (see truncate.hpp).
#include "tools/truncate.hpp"

#include <algorithm>

namespace dsa {

namespace {

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

HeadTailBuffer::HeadTailBuffer(size_t max_bytes) : head_max_(max_bytes / 2), tail_max_(max_bytes - max_bytes / 2) {}

void HeadTailBuffer::append(std::string_view data) {
  size_t take = std::min(data.size(), head_max_ - head_.size());
  head_.append(data.substr(0, take));
  data.remove_prefix(take);
  for (char c : data) {
    if (tail_max_ == 0) {  // a cap of 0 bytes keeps nothing but the marker
      ++cut_bytes_;
      cut_lines_ += c == '\n';
      continue;
    }
    if (tail_.size() < tail_max_) {
      tail_.push_back(c);
      continue;
    }
    char& oldest = tail_[tail_start_];
    ++cut_bytes_;
    if (oldest == '\n') ++cut_lines_;
    oldest = c;
    tail_start_ = (tail_start_ + 1) % tail_max_;
  }
}

std::string HeadTailBuffer::str() const {
  std::string tail = tail_.substr(tail_start_) + tail_.substr(0, tail_start_);
  if (!truncated()) return head_ + tail;
  // Move the cut to character boundaries: drop a partial character at the end of the head and at
  // the start of the tail, counting those bytes as cut (they are never newlines).
  std::string head = head_;
  size_t lead = head.size();
  while (lead > 0 && is_utf8_continuation(head[lead - 1])) --lead;
  if (lead > 0) {
    auto b = static_cast<unsigned char>(head[lead - 1]);
    size_t want = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    if (head.size() - (lead - 1) < want) head.resize(lead - 1);
  }
  size_t t = 0;
  while (t < tail.size() && is_utf8_continuation(tail[t])) ++t;
  size_t cut = cut_bytes_ + (head_.size() - head.size()) + t;
  return head + "\n[... " + std::to_string(cut) + " bytes (" + std::to_string(cut_lines_) +
         " lines) cut ...]\n" + tail.substr(t);
}

Truncated truncate_head_tail(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return {std::string(text), false};
  HeadTailBuffer buf(max_bytes);
  buf.append(text);
  return {buf.str(), true};
}

}  // namespace dsa
