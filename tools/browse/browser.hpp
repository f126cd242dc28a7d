// The browsing tools DeepSeek-V3.2 was trained with: search(query, topn, source), open(id | url,
// cursor, loc, num_lines) and find(pattern, cursor), over a backend (the offline corpus or the web).
// Every result is a page pushed on a per-trajectory stack; its index is the cursor the model uses
// to refer back to it (links on a page, scrolling, find). Also the BrowseComp-Plus tool contract,
// search(query) -> [{docid, score, snippet}] and get_document(docid), for its evaluator.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/result.hpp"
#include "tools/browse/page.hpp"
#include "tools/tool.hpp"

namespace dsa {

struct SearchResult {
  std::string id;     // docid (corpus) or url (web): what fetch() takes
  std::string url;    // may be empty for corpus documents without one
  std::string title;
  std::string snippet;
  double score = 0;
};

struct FetchedDoc {
  std::string id;
  std::string url;
  std::string title;
  std::string text;             // plain text; links already written as 【i†title†domain】
  std::vector<PageLink> links;  // link i of the text
};

class BrowseBackend {
 public:
  virtual ~BrowseBackend() = default;
  virtual std::string name() const = 0;  // "corpus" or "web"
  virtual Result<std::vector<SearchResult>> search(std::string_view query, int topn) = 0;
  virtual Result<FetchedDoc> fetch(std::string_view id_or_url) = 0;
};

class Corpus;
// The offline corpus as a backend (documents by docid, then by url).
std::shared_ptr<BrowseBackend> make_corpus_backend(std::shared_ptr<const Corpus> corpus);

struct BrowseOptions {
  int default_topn = 10;
  int64_t default_lines = 60;   // lines shown by open when num_lines is not given
  size_t line_width = 100;
  size_t snippet_chars = 300;   // search-result snippets
  int bcp_k = 5;                // BrowseComp-Plus search: hits per query
  size_t bcp_snippet_chars = 2048;  // about 512 tokens of English text
};

// One trajectory's browsing state. Thread-compatible (one trajectory at a time); tools created by
// add_browse_tools share it.
class Browser {
 public:
  Browser(std::shared_ptr<BrowseBackend> backend, BrowseOptions options = {});

  Observation search(const std::string& query, int topn);
  // id: a link id on page `cursor` (or the newest page when cursor < 0), or a url / docid; an
  // empty id re-shows page `cursor` from line `loc` (scrolling).
  Observation open(const std::string& id, int cursor, int64_t loc, int64_t num_lines);
  Observation find(const std::string& pattern, int cursor);

  const std::vector<Page>& pages() const { return pages_; }
  const std::shared_ptr<BrowseBackend>& backend() const { return backend_; }
  const BrowseOptions& options() const { return opt_; }
  // Documents opened so far (docids or urls), in order, without repeats: BrowseComp-Plus's
  // retrieved_docids.
  const std::vector<std::string>& retrieved() const { return retrieved_; }

 private:
  Observation show(size_t cursor, int64_t loc, int64_t num_lines);
  Result<size_t> page_at(int cursor) const;
  void note_retrieved(const std::string& id);

  std::shared_ptr<BrowseBackend> backend_;
  BrowseOptions opt_;
  std::vector<Page> pages_;
  std::vector<std::string> retrieved_;
};

enum class BrowseToolSet {
  deepseek,         // search, open, find
  browsecomp_plus,  // search, get_document
};

// Adds the tool set to the registry; the tools share `browser`.
void add_browse_tools(ToolRegistry& registry, std::shared_ptr<Browser> browser, BrowseToolSet set);

}  // namespace dsa
