// The offline search corpus: documents {docid, url, title, text} in one SQLite file with an FTS5
// index ranked by BM25 (FTS5's defaults k1 = 1.2, b = 0.75; title matches weigh more than body
// matches). Built once by `dsagent index CORPUS.jsonl --out corpus.db`, then opened read-only by
// the browsing tools, so runs over it are reproducible.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/result.hpp"

struct sqlite3;

namespace dsa {

struct CorpusDoc {
  std::string docid;
  std::string url;
  std::string title;
  std::string text;
};

struct CorpusHit {
  std::string docid;
  std::string url;
  std::string title;
  double score = 0;     // BM25, larger is better
  std::string snippet;  // the start of the text, or the passage around the first matched term
};

struct IndexStats {
  int64_t documents = 0;
  int64_t skipped = 0;  // blank lines
  int64_t bytes = 0;    // text bytes indexed
};

// Reads JSONL `{docid, url?, title?, text}` (also accepted: `id` for docid, `contents` for text,
// as BrowseComp-Plus and Pyserini spell them) and writes a fresh index at `db` (an existing file
// is replaced only when the whole build succeeded). Errors name the file and line.
Result<IndexStats> build_corpus_index(const std::filesystem::path& jsonl, const std::filesystem::path& db,
                                      const std::function<void(int64_t docs)>& progress = {});

class Corpus {
 public:
  // Fails on a file that is not a corpus and on a damaged one: a document count that is not a
  // number, or an index that does not find the first or the last document by its own words (a
  // damaged index otherwise shows only as searches that find nothing).
  static Result<std::unique_ptr<Corpus>> open(const std::filesystem::path& db);
  ~Corpus();
  Corpus(const Corpus&) = delete;
  Corpus& operator=(const Corpus&) = delete;

  // The best `k` documents for a free-text query (any punctuation is fine: the query is split into
  // words, which are OR-ed). snippet_chars bounds each snippet.
  Result<std::vector<CorpusHit>> search(std::string_view query, int k, size_t snippet_chars = 300) const;
  // By docid, or by url when no docid matches.
  Result<std::optional<CorpusDoc>> get(std::string_view docid_or_url) const;
  int64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  Corpus(sqlite3* db, std::filesystem::path path);
  Result<void> check_index() const;
  sqlite3* db_;
  std::filesystem::path path_;
  int64_t size_ = 0;
};

// The FTS5 MATCH expression for a free-text query: its words, each quoted, joined by OR;
// empty when the query has no word.
std::string fts_match_expression(std::string_view query);

}  // namespace dsa
