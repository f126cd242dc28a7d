// HTML to text for the web backend: entities, lists, tables, raw-text elements, malformed markup,
// links and url resolution, and non-HTML bodies.
#include <doctest/doctest.h>

#include <random>

#include "tools/browse/html_text.hpp"

using namespace dsa;

TEST_CASE("html_text: character references") {
  auto t = html_to_text(
      "<p>Fish &amp; chips &lt;b&gt; &quot;q&quot; &#39;s&#39; &#233;t&#xE9; caf&eacute;&nbsp;bar &mdash; "
      "&unknown; AT&T &#x1F600; &#146;</p>",
      "");
  CHECK(t.text == "Fish & chips <b> \"q\" 's' \xC3\xA9t\xC3\xA9 caf\xC3\xA9 bar \xE2\x80\x94 &unknown; AT&T "
                  "\xF0\x9F\x98\x80 \xE2\x80\x99");
  CHECK(decode_entities("a&lt;&#0;&#xD800;") == "a<\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(decode_entities("&amp") == "&amp");  // unterminated: as written
}

TEST_CASE("html_text: nested and ordered lists") {
  auto t = html_to_text("<ul><li>a<ul><li>b</li><li>c</li></ul></li><li>d</ul><ol><li>x<li>y</ol>after", "");
  CHECK(t.text == "- a\n  - b\n  - c\n- d\n\n1. x\n2. y\n\nafter");
  // Paragraphs inside items stay on the marker's line.
  CHECK(html_to_text("<ul><li><p>one</p></li><li><div><p>two</p></div></li></ul>", "").text == "- one\n- two");
}

TEST_CASE("html_text: script and style are dropped, even with markup inside strings") {
  auto t = html_to_text(
      "<div>before</div><script>var s = \"</div><a href='x'>no</a>\"; if (a < b) {}</script>"
      "<STYLE>p > a { color: red }</STYLE><noscript><p>enable js</p></noscript><div>after</div>",
      "https://example.org/");
  CHECK(t.text == "before\nafter");
  CHECK(t.links.empty());
}

TEST_CASE("html_text: malformed markup does not lose text") {
  auto t = html_to_text("<p>a < b and c > d</p><p>unclosed <b>bold<p>x</i></p><!-- hidden --><div class=\"x", "");
  CHECK(t.text == "a < b and c > d\n\nunclosed bold\n\nx");
  // A page cut inside a comment or a quoted attribute keeps what came before.
  CHECK(html_to_text("<p>kept</p><!-- never closed <p>lost", "").text == "kept");
  CHECK(html_to_text("<p>kept</p><a href=\"/x>lost", "").text == "kept");
}

TEST_CASE("html_text: uppercase tags, title, head dropped") {
  auto t = html_to_text(
      "<!DOCTYPE html><HTML><HEAD><TITLE>Big &amp; Loud</TITLE><META NAME=x CONTENT=y></HEAD>"
      "<BODY><H1>Head</H1><P>Para <A HREF=\"/x\">Link</A></P></BODY></HTML>",
      "https://www.example.org/a/b");
  CHECK(t.title == "Big & Loud");
  CHECK(t.text == "# Head\n\nPara \xE3\x80\x90" "0\xE2\x80\xA0Link\xE2\x80\xA0" "example.org\xE3\x80\x91");
  REQUIRE(t.links.size() == 1);
  CHECK(t.links[0].target == "https://www.example.org/x");
  CHECK(html_to_text("<h2> First  heading </h2><p>x</p>", "").title == "First heading");  // no <title>
  // An unclosed <head> ends where content starts.
  CHECK(html_to_text("<head><title>T</title><meta charset=utf-8><p>content", "").text == "content");
}

TEST_CASE("html_text: attribute values with > inside quotes") {
  auto t = html_to_text("<a title=\"a > b\" href='/p?x=1&amp;y=2'>Go</a> <img alt=\">\" src=x>after", "http://h.net/");
  CHECK(t.text == link_marker(0, "Go", "h.net") + " after");
  REQUIRE(t.links.size() == 1);
  CHECK(t.links[0].target == "http://h.net/p?x=1&y=2");
}

TEST_CASE("html_text: headings, tables, line breaks, pre") {
  auto t = html_to_text(
      "<h2>Sub</h2><table><tr><th>k</th><th>v</th></tr>\n<tr><td>1</td> <td>2</td></tr></table>"
      "line1<br>line2<pre>  code\n    indented</pre>tail   text",
      "");
  CHECK(t.text == "## Sub\n\nk | v\n1 | 2\n\nline1\nline2\n\n  code\n    indented\n\ntail text");
  // Cells holding blocks keep their row on one line.
  CHECK(html_to_text("<table><tr><td><p>a</p></td><td><div>b</div>\n</td></tr><tr><td>c<br></td><td>d</td></tr></table>", "")
            .text == "a | b\nc | d");
}

TEST_CASE("html_text: links are numbered, resolved, and only real targets count") {
  auto t = html_to_text(
      "<head><title>T</title><link rel=stylesheet href=s.css></head><body><p>See <a href=\"other.html\">the "
      "other\n page</a>, <a href=\"../up/\">up</a>, <a href=\"//cdn.example.net/a\">cdn</a>, <a href=\"#top\">top</a>, "
      "<a href=\"javascript:void(0)\">js</a> and <a href=\"https://b.com/x#frag\"><img src=i.png alt=\"B logo\"></a>."
      "<a href=\"/empty\"> </a></p>",
      "https://www.example.org/dir/page.html");
  CHECK(t.title == "T");
  CHECK(t.text == "See " + link_marker(0, "the other page", "example.org") + ", " + link_marker(1, "up", "example.org") +
                      ", " + link_marker(2, "cdn", "cdn.example.net") + ", top, js and " +
                      link_marker(3, "B logo", "b.com") + ".");
  REQUIRE(t.links.size() == 4);
  CHECK(t.links[0].target == "https://www.example.org/dir/other.html");
  CHECK(t.links[1].target == "https://www.example.org/up/");
  CHECK(t.links[2].target == "https://cdn.example.net/a");
  CHECK(t.links[3].target == "https://b.com/x");
  // Links around blocks keep their structure: the heading becomes the marker, the rest follows.
  auto card = html_to_text(
      "<a href=\"/r\"><h3>Result title</h3><p>Description text</p></a><p>next</p>"
      "<ul><li><a href=\"/c\"><div>Card</div></a></li></ul>",
      "http://e.com/");
  CHECK(card.text == "### " + link_marker(0, "Result title", "e.com") + "\n\nDescription text\n\nnext\n\n- " +
                         link_marker(1, "Card", "e.com"));
  // <base href> changes where relative links point.
  auto b = html_to_text("<base href=\"https://other.org/root/\"><a href=\"x\">x</a>", "https://example.org/");
  REQUIRE(b.links.size() == 1);
  CHECK(b.links[0].target == "https://other.org/root/x");
  // A title cannot break the marker syntax.
  auto m = html_to_text("<a href=\"/q\">a\xE2\x80\xA0" "b\xE3\x80\x91</a>", "http://e.com/");
  REQUIRE(m.links.size() == 1);
  CHECK(m.links[0].title == "a+b]");
}

TEST_CASE("html_text: url resolution (RFC 3986 section 5.4 examples)") {
  const std::string base = "http://a/b/c/d;p?q";
  CHECK(resolve_url(base, "g") == "http://a/b/c/g");
  CHECK(resolve_url(base, "./g") == "http://a/b/c/g");
  CHECK(resolve_url(base, "g/") == "http://a/b/c/g/");
  CHECK(resolve_url(base, "/g") == "http://a/g");
  CHECK(resolve_url(base, "//g") == "http://g");
  CHECK(resolve_url(base, "?y") == "http://a/b/c/d;p?y");
  CHECK(resolve_url(base, "g?y") == "http://a/b/c/g?y");
  CHECK(resolve_url(base, "#s") == "http://a/b/c/d;p?q");
  CHECK(resolve_url(base, ".") == "http://a/b/c/");
  CHECK(resolve_url(base, "..") == "http://a/b/");
  CHECK(resolve_url(base, "../g") == "http://a/b/g");
  CHECK(resolve_url(base, "../..") == "http://a/");
  CHECK(resolve_url(base, "../../../g") == "http://a/g");
  CHECK(resolve_url(base, "g:h") == "g:h");
  CHECK(resolve_url("https://x.org", "p") == "https://x.org/p");
}

TEST_CASE("html_text: bodies by content type") {
  CHECK(body_to_text("text/plain; charset=utf-8", "line 1\r\nline 2", "").text == "line 1\nline 2");
  CHECK(body_to_text("application/json", "{\"a\":[1,2]}", "").text == "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
  CHECK(body_to_text("text/plain; charset=ISO-8859-1", "caf\xE9", "").text == "caf\xC3\xA9");
  CHECK(body_to_text("text/plain", "caf\xE9 au lait", "").text == "caf\xC3\xA9 au lait");  // not UTF-8: Latin-1
  CHECK(body_to_text("text/plain", "caf\xC3", "").text == "caf");  // cut inside a character
  CHECK(body_to_text("", "<!DOCTYPE html><html><body><p>x &amp; y</p>", "").text == "x & y");

  std::string png = std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16) + std::string(2000, '\x01');
  auto img = body_to_text("image/png", png, "");
  CHECK(img.text.find('\n') == std::string::npos);
  CHECK(img.text.find("image/png") != std::string::npos);
  CHECK(img.text.find("2.0 KB") != std::string::npos);
  CHECK(img.links.empty());
  auto bin = body_to_text("", png, "");  // no type: sniffed as binary
  CHECK(bin.text.find("application/octet-stream") != std::string::npos);
  CHECK(bin.text.find("PNG") == std::string::npos);
  CHECK(body_to_text("application/pdf", "%PDF-1.7 ...", "").text.find("PDF document") != std::string::npos);
}

TEST_CASE("html_text: random tag soup keeps one link per marker") {
  const std::vector<std::string> pieces = {
      "<a href=\"/x\">", "</a>", "<A HREF=y>", "<p>", "</p>", "<li>", "<ul>", "</ul>", "<ol>", "<td>", "<tr>",
      "<table>", "<h2>", "</h2>", "<br>", "<pre>", "</pre>", "<script>", "</script>", "<!--", "-->", "<head>",
      "<title>", "</title>", "<svg>", "</svg>", "<img alt=\"i\">", "&amp;", "&#x41;", "&#99999999;", "&",
      "<", ">", "\"", "'", "=", " ", "\n", "text", "\xC3\xA9", "\xFF", "<div class='a>b'>", "</div>", "<base href=/b/>"};
  std::mt19937 rng(1234);
  for (int round = 0; round < 3000; ++round) {
    std::string html;
    const int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) html += pieces[rng() % pieces.size()];
    auto t = html_to_text(html, "https://e.org/p/q");
    size_t markers = 0;
    for (size_t p = t.text.find("\xE3\x80\x90"); p != std::string::npos; p = t.text.find("\xE3\x80\x90", p + 1)) ++markers;
    REQUIRE_MESSAGE(markers == t.links.size(), html);
    for (const auto& l : t.links) CHECK(l.target.starts_with("https://e.org/"));
  }
}
