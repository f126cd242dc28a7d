// Page layout and rendering for the browsing tools (see page.hpp).
#include "tools/browse/page.hpp"

#include <algorithm>
#include <cctype>

namespace dsa {

namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Appends one paragraph (no newlines inside) wrapped to `width` bytes.
void wrap_paragraph(std::string_view p, size_t width, std::vector<std::string>& out) {
  while (p.size() > width) {
    size_t cut = p.rfind(' ', width);
    if (cut == std::string_view::npos || cut < width / 2) {
      cut = width;
      while (cut > 0 && is_continuation(static_cast<unsigned char>(p[cut]))) --cut;
      if (cut == 0) cut = width;  // a malformed run: cut anyway
      out.emplace_back(p.substr(0, cut));
      p.remove_prefix(cut);
    } else {
      out.emplace_back(p.substr(0, cut));
      p.remove_prefix(cut + 1);
    }
  }
  out.emplace_back(p);
}

}  // namespace

std::vector<std::string> wrap_text(std::string_view text, size_t width) {
  std::vector<std::string> out;
  bool last_blank = true;  // no blank line at the start
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      if (!last_blank) out.emplace_back();
      last_blank = true;
    } else {
      wrap_paragraph(line, std::max<size_t>(width, 8), out);
      last_blank = false;
    }
    start = end + 1;
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

std::string url_domain(std::string_view url, std::string_view fallback) {
  size_t p = url.find("://");
  if (p == std::string_view::npos) return std::string(fallback);
  std::string_view host = url.substr(p + 3);
  host = host.substr(0, host.find_first_of("/?#"));
  if (size_t at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
  host = host.substr(0, host.find(':'));
  if (host.substr(0, 4) == "www.") host.remove_prefix(4);
  return host.empty() ? std::string(fallback) : std::string(host);
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

std::string_view utf8_prefix(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t n = max_bytes;
  while (n > 0 && is_continuation(static_cast<unsigned char>(s[n]))) --n;
  return s.substr(0, n);
}

std::string link_marker(size_t id, std::string_view title, std::string_view domain) {
  std::string out = "【";
  out.append(std::to_string(id)).append("†").append(title).append("†").append(domain).append("】");
  return out;
}

std::string render_page(const Page& page, int cursor, int64_t loc, int64_t num_lines) {
  const auto n = static_cast<int64_t>(page.lines.size());
  std::string out;
  out.append("[").append(std::to_string(cursor)).append("] ").append(page.title);
  if (!page.url.empty()) out.append(" (").append(page.url).append(")");
  out.append("\n");
  if (n == 0) return out.append("**viewing lines [0 - 0] of 0**\n\n(empty page)\n");
  const int64_t a = std::clamp<int64_t>(loc, 0, n - 1);
  const int64_t b = std::min(n - 1, a + std::max<int64_t>(num_lines, 1) - 1);
  out.append("**viewing lines [").append(std::to_string(a)).append(" - ").append(std::to_string(b));
  out.append("] of ").append(std::to_string(n - 1)).append("**\n\n");
  for (int64_t i = a; i <= b; ++i) {
    out.append("L").append(std::to_string(i)).append(": ").append(page.lines[static_cast<size_t>(i)]).append("\n");
  }
  return out;
}

std::vector<int64_t> find_in_page(const Page& page, std::string_view pattern) {
  std::vector<int64_t> hits;
  const std::string needle = lower_ascii(pattern);
  if (needle.empty()) return hits;
  for (size_t i = 0; i < page.lines.size(); ++i) {
    if (lower_ascii(page.lines[i]).find(needle) != std::string::npos) hits.push_back(static_cast<int64_t>(i));
  }
  return hits;
}

}  // namespace dsa
