// A page as the browsing tools show it to the model, in the format DeepSeek-V3.2's search
// trajectories use: a header `[cursor] title (url)`, `**viewing lines [a - b] of last**`, then the
// window of numbered lines `L12: ...`; links inside the text read `【id†title†domain】` and `open`
// follows them by id.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsa {

struct PageLink {
  std::string target;  // url or docid that `open` fetches; empty for a link into another page
  std::string title;
  int target_cursor = -1;  // find results: the page and line the match is on
  int64_t target_line = 0;
};

struct Page {
  std::string url;
  std::string title;
  std::vector<std::string> lines;
  std::vector<PageLink> links;  // link id i is links[i]
};

// Splits text into lines of at most `width` bytes, breaking at spaces where possible and never
// inside a UTF-8 character; paragraph breaks are kept, runs of blank lines collapse to one.
std::vector<std::string> wrap_text(std::string_view text, size_t width = 100);

// The host of a URL without "www." ("https://www.a.org/x" -> "a.org"); `fallback` when none.
std::string url_domain(std::string_view url, std::string_view fallback = "");

// The longest prefix of `s` of at most `max_bytes` bytes that ends on a UTF-8 character boundary.
std::string_view utf8_prefix(std::string_view s, size_t max_bytes);

// Whether `s` has the byte structure of UTF-8 (lead bytes and their continuation bytes).
bool valid_utf8(std::string_view s);

// `【id†title†domain】`
std::string link_marker(size_t id, std::string_view title, std::string_view domain);

// The window [loc, loc + num_lines) of a page (clamped), with its header.
std::string render_page(const Page& page, int cursor, int64_t loc, int64_t num_lines);

// Line numbers of lines containing `pattern`, case-insensitively (ASCII letters).
std::vector<int64_t> find_in_page(const Page& page, std::string_view pattern);

}  // namespace dsa
