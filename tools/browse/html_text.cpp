// HTML and other fetched bodies to text (see html_text.hpp). One forward pass over the markup: a
// tag reader that copes with unquoted, quoted (with '>' inside) and missing attribute values, raw
// text elements (script, style) skipped up to their own end tag, and a text builder that collapses
// whitespace and knows where lines and paragraphs break.
#include "tools/browse/html_text.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "tools/browse/page.hpp"

namespace dsa {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

std::string lower_str(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool starts_with_ci(std::string_view s, size_t pos, std::string_view lit) {
  if (pos + lit.size() > s.size()) return false;
  for (size_t i = 0; i < lit.size(); ++i) {
    if (lower(s[pos + i]) != lit[i]) return false;
  }
  return true;
}

// Case-insensitive find of a lower-case needle.
size_t find_ci(std::string_view s, std::string_view needle, size_t pos) {
  for (size_t i = pos; i + needle.size() <= s.size(); ++i) {
    if (starts_with_ci(s, i, needle)) return i;
  }
  return std::string_view::npos;
}

std::string collapse_ws(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (is_space(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Numeric references 128-159 name Windows-1252 characters in practice, as browsers read them.
constexpr uint32_t kCp1252[32] = {0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
                                  0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};

const std::map<std::string_view, uint32_t>& named_entities() {
  static const std::map<std::string_view, uint32_t> m = {
      {"amp", '&'},       {"lt", '<'},        {"gt", '>'},        {"quot", '"'},      {"apos", '\''},
      {"nbsp", ' '},      {"ensp", ' '},      {"emsp", ' '},      {"thinsp", ' '},    {"shy", 0},
      {"copy", 0xA9},     {"reg", 0xAE},      {"trade", 0x2122},  {"hellip", 0x2026}, {"mdash", 0x2014},
      {"ndash", 0x2013},  {"lsquo", 0x2018},  {"rsquo", 0x2019},  {"sbquo", 0x201A},  {"ldquo", 0x201C},
      {"rdquo", 0x201D},  {"bdquo", 0x201E},  {"laquo", 0xAB},    {"raquo", 0xBB},    {"bull", 0x2022},
      {"middot", 0xB7},   {"deg", 0xB0},      {"times", 0xD7},    {"divide", 0xF7},   {"plusmn", 0xB1},
      {"minus", 0x2212},  {"euro", 0x20AC},   {"pound", 0xA3},    {"yen", 0xA5},      {"cent", 0xA2},
      {"sect", 0xA7},     {"para", 0xB6},     {"frac12", 0xBD},   {"frac14", 0xBC},   {"frac34", 0xBE},
      {"sup2", 0xB2},     {"sup3", 0xB3},     {"micro", 0xB5},    {"larr", 0x2190},   {"rarr", 0x2192},
      {"uarr", 0x2191},   {"darr", 0x2193},   {"harr", 0x2194},   {"le", 0x2264},     {"ge", 0x2265},
      {"ne", 0x2260},     {"asymp", 0x2248},  {"infin", 0x221E},  {"dagger", 0x2020}, {"Dagger", 0x2021},
      {"iexcl", 0xA1},    {"iquest", 0xBF},   {"alpha", 0x3B1},   {"beta", 0x3B2},    {"gamma", 0x3B3},
      {"delta", 0x3B4},   {"lambda", 0x3BB},  {"mu", 0x3BC},      {"pi", 0x3C0},      {"sigma", 0x3C3},
      {"Agrave", 0xC0},   {"Aacute", 0xC1},   {"Auml", 0xC4},     {"Aring", 0xC5},    {"AElig", 0xC6},
      {"Ccedil", 0xC7},   {"Eacute", 0xC9},   {"Ntilde", 0xD1},   {"Ouml", 0xD6},     {"Oslash", 0xD8},
      {"Uuml", 0xDC},     {"szlig", 0xDF},    {"agrave", 0xE0},   {"aacute", 0xE1},   {"acirc", 0xE2},
      {"auml", 0xE4},     {"aring", 0xE5},    {"aelig", 0xE6},    {"ccedil", 0xE7},   {"egrave", 0xE8},
      {"eacute", 0xE9},   {"ecirc", 0xEA},    {"euml", 0xEB},     {"iacute", 0xED},   {"iuml", 0xEF},
      {"ntilde", 0xF1},   {"oacute", 0xF3},   {"ocirc", 0xF4},    {"ouml", 0xF6},     {"oslash", 0xF8},
      {"uacute", 0xFA},   {"ucirc", 0xFB},    {"uuml", 0xFC},     {"yuml", 0xFF},
  };
  return m;
}

// The code point of a numeric reference body ("#233", "#xE9"); nullopt when malformed.
std::optional<uint32_t> numeric_reference(std::string_view ent) {
  const bool hex = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X');
  std::string_view digits = ent.substr(hex ? 2 : 1);
  if (digits.empty() || digits.size() > 8) return std::nullopt;
  uint32_t cp = 0;
  for (char c : digits) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0) return std::nullopt;
    cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
  }
  if (cp >= 0x80 && cp < 0xA0) return kCp1252[cp - 0x80];
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0xFFFD;
  return cp;
}

// Text collected with whitespace collapsed; line and paragraph breaks are explicit.
class TextBuilder {
 public:
  // Inline text: runs of whitespace become one space, none at a line start.
  void text(std::string_view t) {
    for (char c : t) {
      if (is_space(c)) {
        pending_space_ = true;
        continue;
      }
      if (pending_space_ && !out_.empty() && out_.back() != '\n' && out_.back() != ' ') out_ += ' ';
      pending_space_ = false;
      out_ += c;
    }
  }
  // Text written as is (inside <pre>, list markers, link markers).
  void raw(std::string_view t) {
    if (pending_space_ && !t.empty() && t[0] != ' ' && !out_.empty() && out_.back() != '\n' && out_.back() != ' ') {
      out_ += ' ';
    }
    pending_space_ = false;
    out_ += t;
  }
  // A list item's "- ", a heading's "# ", a cell's " | ": a block right after it starts no new line.
  void marker(std::string_view m) {
    raw(m);
    marker_end_ = out_.size();
  }
  // Ends the line (n = 1) or the paragraph (n = 2); nothing at the very start or right after a marker.
  void line_break(int n) {
    pending_space_ = false;
    if (out_.size() == marker_end_) return;
    trim_spaces();
    if (out_.empty()) return;
    int have = trailing_newlines();
    for (; have < n; ++have) out_ += '\n';
  }
  // <br>: always a new line, up to one blank line.
  void hard_break() {
    pending_space_ = false;
    if (out_.size() == marker_end_) return;
    trim_spaces();
    if (!out_.empty() && trailing_newlines() < 2) out_ += '\n';
  }
  bool pending_space() const { return pending_space_; }
  void truncate(size_t n) {
    out_.resize(n);
    if (marker_end_ > n) marker_end_ = std::string::npos;
  }
  // Drops trailing spaces and newlines, but nothing before `floor`.
  void trim_back_to(size_t floor) {
    while (out_.size() > floor && (out_.back() == ' ' || out_.back() == '\n')) out_.pop_back();
    pending_space_ = false;
  }
  const std::string& str() const { return out_; }
  size_t size() const { return out_.size(); }

 private:
  void trim_spaces() {
    while (!out_.empty() && out_.back() == ' ') out_.pop_back();
  }
  int trailing_newlines() const {
    int k = 0;
    for (size_t i = out_.size(); i > 0 && out_[i - 1] == '\n'; --i) ++k;
    return k;
  }
  std::string out_;
  bool pending_space_ = false;
  size_t marker_end_ = std::string::npos;
};

struct Tag {
  std::string name;  // lower case
  std::map<std::string, std::string> attrs;  // names lower case, values decoded; first occurrence wins

  const std::string* attr(const std::string& key) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? nullptr : &it->second;
  }
};

// Reads a tag starting at html[pos] == '<' whose name starts at name_pos. Returns the position
// after its '>', or npos when the markup ends inside the tag.
size_t read_tag(std::string_view html, size_t name_pos, Tag& tag) {
  const size_t n = html.size();
  size_t p = name_pos;
  while (p < n && (is_alnum(html[p]) || html[p] == '-' || html[p] == ':' || html[p] == '_')) ++p;
  tag.name = lower_str(html.substr(name_pos, p - name_pos));
  while (p < n) {
    while (p < n && (is_space(html[p]) || html[p] == '/')) ++p;
    if (p >= n) break;
    if (html[p] == '>') return p + 1;
    size_t a = p;
    while (p < n && !is_space(html[p]) && html[p] != '=' && html[p] != '>' && html[p] != '/') ++p;
    if (p == a) ++p;  // a stray '=' or quote: step over it
    std::string name = lower_str(html.substr(a, p - a));
    size_t q = p;
    while (q < n && is_space(html[q])) ++q;
    std::string value;
    if (q < n && html[q] == '=') {
      ++q;
      while (q < n && is_space(html[q])) ++q;
      if (q < n && (html[q] == '"' || html[q] == '\'')) {
        size_t close = html.find(html[q], q + 1);
        if (close == std::string_view::npos) return std::string_view::npos;
        value = decode_entities(html.substr(q + 1, close - q - 1));
        p = close + 1;
      } else {
        size_t v = q;
        while (q < n && !is_space(html[q]) && html[q] != '>') ++q;
        value = decode_entities(html.substr(v, q - v));
        p = q;
      }
    }
    if (!name.empty()) tag.attrs.emplace(std::move(name), std::move(value));
  }
  return std::string_view::npos;
}

bool in_set(std::string_view name, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), name) != set.end();
}

// Elements that end a line, and those that end a paragraph.
bool is_line_block(std::string_view n) {
  return in_set(n, {"div", "section", "article", "header", "footer", "nav", "aside", "main", "form", "fieldset",
                    "figcaption", "dt", "dd", "address", "details", "summary", "caption", "center", "legend",
                    "body", "html"});
}
bool is_paragraph_block(std::string_view n) {
  return in_set(n, {"p", "blockquote", "table", "figure", "dl", "hr"});
}
// Elements whose whole content is dropped (their markup is still parsed, to find their end).
bool is_dropped(std::string_view n) { return in_set(n, {"svg", "template", "iframe", "object", "math", "select"}); }
// Elements whose content is raw text up to their own end tag.
bool is_raw_text(std::string_view n) { return in_set(n, {"script", "style", "noscript", "title", "textarea", "xmp"}); }

int heading_level(std::string_view n) {
  return n.size() == 2 && n[0] == 'h' && n[1] >= '1' && n[1] <= '6' ? n[1] - '0' : 0;
}

// Keeps a link title from breaking the 【id†title†domain】 syntax.
std::string marker_safe(std::string s) {
  auto replace_all = [&](std::string_view from, std::string_view to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  };
  replace_all("†", "+");
  replace_all("【", "[");
  replace_all("】", "]");
  return s;
}

class HtmlConverter {
 public:
  explicit HtmlConverter(std::string_view base_url) : base_(base_url) {}

  PageText run(std::string_view html) {
    const size_t n = html.size();
    size_t i = 0;
    while (i < n) {
      size_t lt = html.find('<', i);
      if (lt == std::string_view::npos) lt = n;
      if (lt > i) text(html.substr(i, lt - i));
      if (lt >= n) break;
      i = lt;
      if (html.substr(i, 4) == "<!--") {
        size_t end = html.find("-->", i + 4);
        i = end == std::string_view::npos ? n : end + 3;
        continue;
      }
      if (i + 1 < n && (html[i + 1] == '!' || html[i + 1] == '?')) {  // doctype, CDATA, processing instruction
        size_t end = html.find('>', i);
        i = end == std::string_view::npos ? n : end + 1;
        continue;
      }
      const bool closing = i + 1 < n && html[i + 1] == '/';
      const size_t name_pos = i + (closing ? 2 : 1);
      if (name_pos >= n || !is_alpha(html[name_pos])) {  // "a < b", "</ >": text, as browsers show it
        text("<");
        ++i;
        continue;
      }
      Tag tag;
      size_t after = read_tag(html, name_pos, tag);
      if (after == std::string_view::npos) break;  // the body ends inside a tag (a truncated page)
      i = after;
      if (closing) {
        end_tag(tag.name);
      } else if (is_raw_text(tag.name)) {
        i = raw_text(html, i, tag.name);
      } else {
        start_tag(tag);
      }
    }
    close_link();
    return finish();
  }

 private:
  void text(std::string_view raw) {
    if (dropped_depth_ > 0 || in_head_) return;
    const std::string t = decode_entities(raw);
    if (pre_depth_ > 0) {
      out_.raw(t);
    } else {
      out_.text(t);
    }
  }

  // Content of script/style/title/...: up to "</name", case-insensitively (so "</div>" inside a
  // script string is not markup). Returns the position after the end tag.
  size_t raw_text(std::string_view html, size_t pos, const std::string& name) {
    size_t end = find_ci(html, "</" + name, pos);
    std::string_view content = html.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (name == "title") {
      if (result_.title.empty() && dropped_depth_ == 0) result_.title = collapse_ws(decode_entities(content));
    } else if (name == "textarea" || name == "xmp") {
      text(content);
    }
    if (end == std::string_view::npos) return html.size();
    size_t gt = html.find('>', end);
    return gt == std::string_view::npos ? html.size() : gt + 1;
  }

  void start_tag(const Tag& tag) {
    const std::string& name = tag.name;
    if (is_dropped(name)) {
      ++dropped_depth_;
      return;
    }
    if (dropped_depth_ > 0) return;
    // Content markup ends an unclosed <head>, as in browsers.
    if (in_head_ && !in_set(name, {"meta", "link", "base", "object", "param", "basefont", "bgsound"})) in_head_ = false;
    if (name == "head") {
      in_head_ = true;
    } else if (name == "body") {
      in_head_ = false;
    } else if (name == "base") {
      if (const auto* href = tag.attr("href"); href && !base_set_) {
        base_ = resolve_url(base_, *href);
        base_set_ = true;
      }
    } else if (name == "br") {
      out_.hard_break();
    } else if (name == "a") {
      close_link();
      if (const auto* href = tag.attr("href")) open_link(*href);
    } else if (name == "img") {
      if (const auto* alt = tag.attr("alt"); alt && link_) link_->alt = collapse_ws(*alt);
    } else if (name == "ul" || name == "ol") {
      out_.line_break(lists_.empty() ? 2 : 1);
      lists_.push_back({name == "ol", 1});
    } else if (name == "li") {
      out_.line_break(1);
      const size_t depth = std::max<size_t>(lists_.size(), 1);
      std::string marker(2 * (depth - 1), ' ');
      if (!lists_.empty() && lists_.back().ordered) {
        marker += std::to_string(lists_.back().next++) + ". ";
      } else {
        marker += "- ";
      }
      out_.marker(marker);
    } else if (name == "tr") {
      out_.line_break(1);
      row_cells_ = 0;
      row_start_ = out_.size();
    } else if (name == "td" || name == "th") {
      if (row_cells_++ > 0) {
        out_.trim_back_to(row_start_);  // a cell that ended with a block stays on the row's line
        out_.marker(" | ");
      }
    } else if (int level = heading_level(name)) {
      out_.line_break(2);
      out_.marker(std::string(static_cast<size_t>(level), '#') + " ");
      heading_start_ = out_.size();
    } else if (name == "pre") {
      out_.line_break(2);
      ++pre_depth_;
    } else if (is_paragraph_block(name)) {
      out_.line_break(lists_.empty() ? 2 : 1);  // no blank lines between list items
    } else if (is_line_block(name)) {
      out_.line_break(1);
    }
  }

  void end_tag(const std::string& name) {
    if (is_dropped(name)) {
      if (dropped_depth_ > 0) --dropped_depth_;
      return;
    }
    if (dropped_depth_ > 0) return;
    if (name == "head") {
      in_head_ = false;
    } else if (name == "a") {
      close_link();
    } else if (name == "ul" || name == "ol") {
      if (!lists_.empty()) lists_.pop_back();
      out_.line_break(lists_.empty() ? 2 : 1);
    } else if (name == "li" || name == "tr") {
      out_.line_break(1);
    } else if (heading_level(name)) {
      if (first_heading_.empty() && heading_start_ && *heading_start_ <= out_.size()) {
        first_heading_ = collapse_ws(out_.str().substr(*heading_start_));
      }
      heading_start_.reset();
      out_.line_break(2);
    } else if (name == "pre") {
      if (pre_depth_ > 0) --pre_depth_;
      out_.line_break(2);
    } else if (is_paragraph_block(name)) {
      out_.line_break(lists_.empty() ? 2 : 1);  // no blank lines between list items
    } else if (is_line_block(name)) {
      out_.line_break(1);
    }
  }

  void open_link(const std::string& href) {
    std::string h = collapse_ws(href);
    const std::string scheme = lower_str(h.substr(0, h.find(':') + 1));
    if (h.empty() || h[0] == '#' || scheme == "javascript:" || scheme == "mailto:" || scheme == "tel:" ||
        scheme == "data:") {
      return;
    }
    link_ = OpenLink{out_.size(), out_.pending_space(), resolve_url(base_, h), ""};
  }

  // Replaces the anchor's text with its marker. An anchor around blocks (a result card: heading
  // and description) keeps its blocks: its first line becomes the marker, a heading's "### " stays
  // in front of it, the lines after it follow as text.
  void close_link() {
    if (!link_) return;
    OpenLink l = std::move(*link_);
    link_.reset();
    const std::string anchor = out_.str().substr(l.start);
    const size_t first = anchor.find_first_not_of(" \n");
    const std::string_view before_text = std::string_view(anchor).substr(0, first);
    const auto leading_newlines = std::count(before_text.begin(), before_text.end(), '\n');
    const size_t eol = first == std::string::npos ? std::string::npos : anchor.find('\n', first);
    std::string line = first == std::string::npos ? "" : anchor.substr(first, eol - first);
    const std::string rest = eol == std::string::npos ? "" : anchor.substr(eol);
    std::string prefix;
    if (size_t hashes = line.find_first_not_of('#'); hashes > 0 && hashes != std::string::npos && line[hashes] == ' ') {
      prefix = line.substr(0, hashes + 1);
      line.erase(0, hashes + 1);
    }
    std::string title = collapse_ws(line);
    if (title.empty()) title = l.alt;
    if (title.empty()) return;
    title = marker_safe(std::move(title));
    const bool space_before = l.space_before || (!anchor.empty() && anchor[0] == ' ');
    const bool space_after = rest.empty() && out_.size() > l.start && out_.pending_space();  // else it was the one before
    out_.truncate(l.start);
    if (leading_newlines > 0) {
      out_.line_break(leading_newlines > 1 ? 2 : 1);
    } else if (space_before) {
      out_.text(" ");
    }
    out_.raw(prefix + link_marker(result_.links.size(), title, url_domain(l.target)));
    out_.raw(rest);
    if (space_after) out_.text(" ");
    result_.links.push_back(PageLink{l.target, title});
  }

  PageText finish() {
    // Trailing spaces off every line, at most one blank line in a row, no blank edges.
    std::string text;
    const std::string& s = out_.str();
    int newlines = 0;
    for (char c : s) {
      if (c == '\n') {
        while (!text.empty() && text.back() == ' ') text.pop_back();
        if (++newlines <= 2 && !text.empty()) text += '\n';
        continue;
      }
      newlines = 0;
      text += c;
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    result_.text = std::move(text);
    if (result_.title.empty()) result_.title = first_heading_;
    return std::move(result_);
  }

  struct List {
    bool ordered;
    int next;
  };
  struct OpenLink {
    size_t start;       // where the anchor text begins in the output
    bool space_before;  // whitespace was pending when the anchor opened
    std::string target;
    std::string alt;    // of an image inside the anchor: the title when the anchor has no text
  };

  std::string base_;
  bool base_set_ = false;
  TextBuilder out_;
  PageText result_;
  std::string first_heading_;
  std::optional<size_t> heading_start_;
  bool in_head_ = false;
  int dropped_depth_ = 0;
  int pre_depth_ = 0;
  int row_cells_ = 0;
  size_t row_start_ = 0;
  std::vector<List> lists_;
  std::optional<OpenLink> link_;
};

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) append_utf8(out, static_cast<unsigned char>(c));
  return out;
}

// Control bytes other than whitespace mark data that is not text.
bool looks_binary(std::string_view body) {
  const std::string_view head = body.substr(0, 4096);
  size_t control = 0;
  for (char c : head) {
    const auto u = static_cast<unsigned char>(c);
    if (u == 0) return true;
    if (u < 0x20 && !is_space(c)) ++control;
  }
  return control * 20 > head.size();
}

std::string size_words(size_t bytes) {
  char buf[32];
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  if (bytes < (1u << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KB", static_cast<double>(bytes) / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  }
  return buf;
}

std::string describe_binary(const std::string& type, size_t bytes) {
  std::string what = "binary data";
  if (type.starts_with("image/")) what = "an image";
  else if (type == "application/pdf") what = "a PDF document";
  else if (type.starts_with("audio/")) what = "audio";
  else if (type.starts_with("video/")) what = "a video";
  else if (type.find("zip") != std::string::npos || type.find("compressed") != std::string::npos) what = "an archive";
  return "This resource is " + what + " (" + type + ", " + size_words(bytes) + ") and cannot be shown as text.";
}

}  // namespace

std::string decode_entities(std::string_view s) {
  if (s.find('&') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    const size_t semi = s.find(';', i + 1);
    if (semi == std::string_view::npos || semi - i > 32 || semi == i + 1) {
      out += s[i++];
      continue;
    }
    const std::string_view ent = s.substr(i + 1, semi - i - 1);
    std::optional<uint32_t> cp;
    if (ent[0] == '#') {
      cp = numeric_reference(ent);
    } else if (auto it = named_entities().find(ent); it != named_entities().end()) {
      cp = it->second;
    }
    if (!cp) {
      out += s[i++];
      continue;
    }
    if (*cp != 0) append_utf8(out, *cp);  // &shy; (0) is an invisible hyphenation hint
    i = semi + 1;
  }
  return out;
}

namespace {

bool has_scheme(std::string_view s) {
  if (s.empty() || !is_alpha(s[0])) return false;
  for (char c : s) {
    if (c == ':') return true;
    if (!is_alnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return false;
}

std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> segs;
  size_t pos = path.starts_with("/") ? 1 : 0;
  bool trailing_slash = false;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    std::string_view seg = path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    trailing_slash = false;
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
      trailing_slash = true;
    } else if (seg == ".") {
      trailing_slash = true;
    } else {
      segs.push_back(seg);
    }
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  std::string out;
  for (size_t k = 0; k < segs.size(); ++k) {
    out += '/';
    out += segs[k];
  }
  if (trailing_slash || out.empty()) out += '/';
  return out;
}

}  // namespace

std::string resolve_url(std::string_view base, std::string_view ref) {
  std::string r = collapse_ws(ref);
  if (size_t hash = r.find('#'); hash != std::string::npos) r.resize(hash);
  std::string_view b = base.substr(0, base.find('#'));
  if (has_scheme(r)) return r;
  const size_t colon = b.find(':');
  if (colon == std::string_view::npos || !has_scheme(b)) return r;  // no usable base
  const std::string_view scheme = b.substr(0, colon + 1);           // "https:"
  std::string_view rest = b.substr(colon + 1);
  std::string_view authority;
  if (rest.starts_with("//")) {
    const size_t end = rest.find_first_of("/?", 2);
    authority = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }
  const size_t q = rest.find('?');
  const std::string_view base_path = rest.substr(0, q);
  const std::string prefix = std::string(scheme) + std::string(authority);
  if (r.starts_with("//")) return std::string(scheme) + r;
  if (r.empty()) return std::string(b);
  if (r[0] == '?') return prefix + std::string(base_path) + r;
  const size_t rq = r.find('?');
  const std::string r_path = r.substr(0, rq);
  const std::string r_query = rq == std::string::npos ? "" : r.substr(rq);
  if (r[0] == '/') return prefix + remove_dot_segments(r_path) + r_query;
  std::string dir;
  if (!authority.empty() && base_path.empty()) {
    dir = "/";
  } else {
    dir = std::string(base_path.substr(0, base_path.rfind('/') + 1));
  }
  return prefix + remove_dot_segments(dir + r_path) + r_query;
}

PageText html_to_text(std::string_view html, std::string_view base_url) {
  return HtmlConverter(base_url).run(html);
}

PageText body_to_text(std::string_view content_type, std::string_view body, std::string_view url) {
  const std::string ct = lower_str(content_type);
  std::string type = collapse_ws(ct.substr(0, ct.find(';')));
  std::string charset;
  if (size_t p = ct.find("charset="); p != std::string::npos) {
    charset = ct.substr(p + 8);
    charset = charset.substr(0, charset.find_first_of("; "));
    std::erase(charset, '"');
  }
  if (type.empty()) {
    const std::string_view head = body.substr(0, 1024);
    if (looks_binary(body)) {
      type = "application/octet-stream";
    } else if (find_ci(head, "<html", 0) != std::string_view::npos || find_ci(head, "<!doctype html", 0) != std::string_view::npos) {
      type = "text/html";
    } else {
      type = "text/plain";
    }
  }
  const bool html = type == "text/html" || type == "application/xhtml+xml";
  const bool json = type.ends_with("/json") || type.ends_with("+json");
  const bool text = type.starts_with("text/") || type.ends_with("/xml") || type.ends_with("+xml") ||
                    type == "application/javascript" || type == "application/x-ndjson";
  if ((!html && !json && !text) || looks_binary(body)) return PageText{"", describe_binary(type, body.size()), {}};

  std::string utf8;
  const bool latin1 = charset == "iso-8859-1" || charset == "latin1" || charset == "windows-1252";
  if (!latin1 && !valid_utf8(body)) {
    // A body cut at the byte cap may end inside a UTF-8 character: no reason to read it as Latin-1.
    std::string_view whole = body;
    for (size_t k = 1; k <= 3 && k <= body.size(); ++k) {
      const auto c = static_cast<unsigned char>(body[body.size() - k]);
      if ((c & 0xC0) == 0x80) continue;
      if (c >= 0xC0) body.remove_suffix(k);
      break;
    }
    if (!valid_utf8(body)) {
      utf8 = latin1_to_utf8(whole);
      body = utf8;
    }
  } else if (latin1) {
    utf8 = latin1_to_utf8(body);
    body = utf8;
  }
  if (html) return html_to_text(body, url);
  if (json) {
    auto parsed = nlohmann::ordered_json::parse(body, nullptr, false);
    if (!parsed.is_discarded()) return PageText{"", parsed.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace), {}};
  }
  std::string out;
  out.reserve(body.size());
  for (char c : body) {
    if (c != '\r') out += c;
  }
  return PageText{"", std::move(out), {}};
}

}  // namespace dsa
