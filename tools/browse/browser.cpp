// Browser: the page stack behind search / open / find (see browser.hpp).
#include "tools/browse/browser.hpp"

#include <algorithm>
#include <charconv>

#include "tools/browse/corpus.hpp"

namespace dsa {

namespace {

Observation error(std::string text) { return Observation{std::move(text), true}; }

bool parse_index(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

class CorpusBackend final : public BrowseBackend {
 public:
  explicit CorpusBackend(std::shared_ptr<const Corpus> c) : corpus_(std::move(c)) {}
  std::string name() const override { return "corpus"; }

  Result<std::vector<SearchResult>> search(std::string_view query, int topn) override {
    DSA_TRY(hits, corpus_->search(query, topn));
    std::vector<SearchResult> out;
    for (auto& h : hits) out.push_back({h.docid, h.url, h.title, h.snippet, h.score});
    return out;
  }

  Result<FetchedDoc> fetch(std::string_view id) override {
    DSA_TRY(doc, corpus_->get(id));
    if (!doc) return make_error("no document '" + std::string(id) + "' in the corpus");
    return FetchedDoc{doc->docid, doc->url, doc->title, doc->text, {}};
  }

 private:
  std::shared_ptr<const Corpus> corpus_;
};

}  // namespace

std::shared_ptr<BrowseBackend> make_corpus_backend(std::shared_ptr<const Corpus> corpus) {
  return std::make_shared<CorpusBackend>(std::move(corpus));
}

Browser::Browser(std::shared_ptr<BrowseBackend> backend, BrowseOptions options)
    : backend_(std::move(backend)), opt_(options) {}

Result<size_t> Browser::page_at(int cursor) const {
  if (pages_.empty()) return make_error("no page is open yet: search or open a url first");
  if (cursor < 0) return pages_.size() - 1;
  if (static_cast<size_t>(cursor) >= pages_.size()) {
    return make_error("no page with cursor " + std::to_string(cursor) + " (cursors 0-" +
                      std::to_string(pages_.size() - 1) + " exist)");
  }
  return static_cast<size_t>(cursor);
}

void Browser::note_retrieved(const std::string& id) {
  if (std::find(retrieved_.begin(), retrieved_.end(), id) == retrieved_.end()) retrieved_.push_back(id);
}

Observation Browser::show(size_t cursor, int64_t loc, int64_t num_lines) {
  if (num_lines <= 0) num_lines = opt_.default_lines;
  return Observation{render_page(pages_[cursor], static_cast<int>(cursor), std::max<int64_t>(loc, 0), num_lines)};
}

Observation Browser::search(const std::string& query, int topn) {
  if (query.find_first_not_of(" \t\n") == std::string::npos) return error("search: the query is empty");
  if (topn <= 0) topn = opt_.default_topn;
  auto hits = backend_->search(query, std::min(topn, 50));
  if (!hits) return error("search failed: " + hits.error().message);
  Page page;
  page.title = "Search results for `" + query + "`";
  page.url = "";
  if (hits->empty()) page.lines.push_back("No results.");
  for (const auto& h : *hits) {
    const std::string domain = url_domain(h.url, backend_->name());
    const std::string title = h.title.empty() ? h.id : h.title;
    page.lines.push_back("# " + link_marker(page.links.size(), title, domain));
    for (auto& l : wrap_text(h.snippet, opt_.line_width)) page.lines.push_back(std::move(l));
    page.lines.emplace_back();
    page.links.push_back(PageLink{h.id, title});
  }
  while (!page.lines.empty() && page.lines.back().empty()) page.lines.pop_back();
  pages_.push_back(std::move(page));
  return show(pages_.size() - 1, 0, std::max<int64_t>(opt_.default_lines, static_cast<int64_t>(pages_.back().lines.size())));
}

Observation Browser::open(const std::string& id, int cursor, int64_t loc, int64_t num_lines) {
  if (id.empty() || id == "-1") {  // scroll an open page
    auto at = page_at(cursor);
    if (!at) return error("open: " + at.error().message);
    return show(*at, loc, num_lines);
  }
  std::string target = id;
  int64_t link = -1;
  if (parse_index(id, link)) {
    auto at = page_at(cursor);
    if (!at) return error("open: " + at.error().message);
    const Page& from = pages_[*at];
    if (link < 0 || static_cast<size_t>(link) >= from.links.size()) {
      return error("open: page " + std::to_string(*at) + " has no link " + id + " (it has " +
                   std::to_string(from.links.size()) + ")");
    }
    const PageLink& l = from.links[static_cast<size_t>(link)];
    if (l.target_cursor >= 0) {  // a find result: jump to the line on the page it was found on
      return show(static_cast<size_t>(l.target_cursor), loc >= 0 ? loc : std::max<int64_t>(l.target_line - 2, 0),
                  num_lines);
    }
    target = l.target;
  }
  auto doc = backend_->fetch(target);
  if (!doc) return error("open: " + doc.error().message);
  Page page;
  page.url = doc->url.empty() ? doc->id : doc->url;
  page.title = doc->title.empty() ? page.url : doc->title;
  page.lines = wrap_text(doc->text, opt_.line_width);
  page.links = std::move(doc->links);
  note_retrieved(doc->id);
  pages_.push_back(std::move(page));
  return show(pages_.size() - 1, loc, num_lines);
}

Observation Browser::find(const std::string& pattern, int cursor) {
  if (pattern.empty()) return error("find: the pattern is empty");
  auto at = page_at(cursor);
  if (!at) return error("find: " + at.error().message);
  const Page& src = pages_[*at];
  Page page;
  page.title = "Find results for text: `" + pattern + "` in `" + src.title + "`";
  page.url = src.url;
  const auto hits = find_in_page(src, pattern);
  if (hits.empty()) page.lines.push_back("No `find` results for pattern: `" + pattern + "`");
  for (int64_t line : hits) {
    page.lines.push_back("# " + link_marker(page.links.size(), "match at L" + std::to_string(line), url_domain(src.url, "page")));
    page.lines.push_back(src.lines[static_cast<size_t>(line)]);
    page.lines.emplace_back();
    page.links.push_back(PageLink{"", "match at L" + std::to_string(line), static_cast<int>(*at), line});
  }
  while (!page.lines.empty() && page.lines.back().empty()) page.lines.pop_back();
  pages_.push_back(std::move(page));
  return show(pages_.size() - 1, 0, opt_.default_lines);
}

}  // namespace dsa
