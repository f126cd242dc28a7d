// Fetched bodies as the text the browsing tools show: HTML to readable lines (no external parser),
// plain text and JSON as they are, anything else as a one-line description. Links in HTML become
// `【i†anchor text†domain】` markers, link i being links[i], with relative urls resolved.
//
// Not a browser: no CSS, no scripts, no layout. Block elements break lines, list items read
// "- item" (or "1. item" in ordered lists, indented when nested), headings "# Title" ("##" for
// h2, ...), table cells are joined by " | " one row per line, and whitespace is collapsed outside
// <pre>. script, style, noscript, template and svg are dropped, and so is <head> except its title.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "tools/browse/page.hpp"

namespace dsa {

struct PageText {
  std::string title;            // <title>, else the first heading; may be empty
  std::string text;
  std::vector<PageLink> links;  // link i of the text
};

// HTML (assumed UTF-8) to text; `base_url` resolves relative links (a <base href> overrides it).
PageText html_to_text(std::string_view html, std::string_view base_url);

// Any fetched body by its Content-Type (sniffed when missing): HTML through html_to_text, text and
// JSON (pretty-printed) as text, images, PDFs and other binary data as one line naming the type
// and size. Latin-1 bodies (declared, or not valid UTF-8) are converted to UTF-8 first.
PageText body_to_text(std::string_view content_type, std::string_view body, std::string_view url);

// Character references: named ones HTML pages commonly use (&amp; &nbsp; &mdash; ...), decimal
// &#NNN; and hex &#xHH;. Unknown or unterminated references stay as written; &nbsp; becomes a space.
std::string decode_entities(std::string_view s);

// `ref` resolved against `base` (RFC 3986 reference resolution, dot segments removed); the
// fragment is dropped.
std::string resolve_url(std::string_view base, std::string_view ref);

}  // namespace dsa
