// Head+tail truncation (see truncate.hpp).
#include "tools/truncate.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace dsa {

namespace {

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The length (1-4) of the well-formed UTF-8 character at s[i], or 0 when the bytes there are not
// one: a stray continuation byte, an overlong form, a surrogate, a character cut short.
size_t utf8_char_length(std::string_view s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  if (lead < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte (RFC 3629's table)
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  const auto second = static_cast<unsigned char>(s[i + 1]);
  if (second < lo || second > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (!is_utf8_continuation(s[i + k])) return 0;
  return n;
}

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

std::string one_line_excerpt(std::string_view text, size_t max_bytes) {
  std::string out;
  bool space = false;  // whitespace seen since the last piece; written only between pieces
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      ++i;
      continue;
    }
    size_t n = utf8_char_length(text, i);
    std::string piece;
    if (n == 0 || c < 0x20 || c == 0x7f) {
      piece = fmt::format("\\x{:02x}", c);
      n = 1;
    } else {
      piece = text.substr(i, n);
    }
    if (out.size() + (space ? 1 : 0) + piece.size() > max_bytes) {
      out += "...";
      break;
    }
    if (space) out += ' ';
    space = false;
    out += piece;
    i += n;
  }
  return out;
}

}  // namespace dsa
