// Head+tail truncation of tool output. A long output keeps its first and last halves of the byte
// budget with a marker between them saying how many bytes and lines were cut, so a model sees both
// how a command started and how it ended. HeadTailBuffer does this while streaming (a command's
// output is never held whole in memory); truncate_head_tail applies it to a finished string.
// Also the one-line excerpt that quotes outside text (a server's reply, a stored value) in an
// error message.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace dsa {

class HeadTailBuffer {
 public:
  explicit HeadTailBuffer(size_t max_bytes);
  void append(std::string_view data);
  bool truncated() const { return cut_bytes_ > 0; }
  // The kept text; when bytes were cut, head + "\n[... N bytes (M lines) cut ...]\n" + tail. The cut
  // is moved to UTF-8 character boundaries so no character is split.
  std::string str() const;

 private:
  size_t head_max_, tail_max_;
  std::string head_;
  std::string tail_;       // ring buffer of the last tail_max_ bytes once the head is full
  size_t tail_start_ = 0;  // index of the oldest byte in tail_ when it is full
  size_t cut_bytes_ = 0;   // bytes that fell out of the ring
  size_t cut_lines_ = 0;   // newlines among them
};

struct Truncated {
  std::string text;
  bool truncated = false;
};

Truncated truncate_head_tail(std::string_view text, size_t max_bytes);

// The start of `text` as one printable line for an error message: runs of whitespace become one
// space, other control bytes and bytes that are not UTF-8 are written as \xNN, and the rest is cut
// at a character boundary within `max_bytes`, marked with "...".
std::string one_line_excerpt(std::string_view text, size_t max_bytes = 200);

}  // namespace dsa
