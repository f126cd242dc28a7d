// The offline corpus on SQLite FTS5 (see corpus.hpp).
#include "tools/browse/corpus.hpp"

#include <sqlite3.h>

#include <cctype>
#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>

#include "tools/browse/page.hpp"
#include "tools/truncate.hpp"

namespace dsa {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSchema =
    "CREATE TABLE docs(id INTEGER PRIMARY KEY, docid TEXT NOT NULL UNIQUE, url TEXT NOT NULL,"
    " title TEXT NOT NULL, text TEXT NOT NULL);"
    "CREATE INDEX docs_url ON docs(url);"
    "CREATE VIRTUAL TABLE docs_fts USING fts5(title, text, content='docs', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2');"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);";

// Title matches count three times as much as body matches in the BM25 sum.
constexpr const char* kSearchSql =
    "SELECT d.docid, d.url, d.title, -bm25(docs_fts, 3.0, 1.0) AS score,"
    " snippet(docs_fts, 1, '', '', ' ... ', 48)"
    " FROM docs_fts JOIN docs d ON d.id = docs_fts.rowid"
    " WHERE docs_fts MATCH ?1 ORDER BY bm25(docs_fts, 3.0, 1.0), d.id LIMIT ?2";

struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

std::string text_column(sqlite3_stmt* s, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

Error sql_error(sqlite3* db, const fs::path& file, std::string_view what) {
  return make_error(file.string() + ": " + std::string(what) + ": " + sqlite3_errmsg(db));
}

// A corpus file that SQLite reads but whose content is broken; only a rebuild mends it.
Error damaged(const fs::path& file, const std::string& why) {
  return make_error(file.string() + ": damaged corpus: " + why + " (rebuild it with `dsagent index`)");
}

// A JSON field as text: strings as they are, numbers (ids are sometimes numbers) printed.
std::string field(const nlohmann::json& j, const char* a, const char* b = nullptr) {
  for (const char* key : {a, b}) {
    if (!key) continue;
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number()) return it->dump();
  }
  return {};
}

// Cuts at a UTF-8 character boundary at or below n bytes, marking the cut.
std::string cut_utf8(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  return std::string(utf8_prefix(s, n)) + " ...";
}

}  // namespace

std::string fts_match_expression(std::string_view query) {
  std::string out, word;
  auto flush = [&] {
    if (word.empty()) return;
    if (!out.empty()) out += " OR ";
    out += '"' + word + '"';
    word.clear();
  };
  for (char ch : query) {
    const auto c = static_cast<unsigned char>(ch);
    // Letters, digits and every non-ASCII byte belong to words; the unicode61 tokenizer decides
    // what is a word character among the non-ASCII ones. Quotes cannot appear inside a word.
    if (c >= 0x80 || std::isalnum(c)) {
      word += ch;
    } else {
      flush();
    }
  }
  flush();
  return out;
}

Result<IndexStats> build_corpus_index(const fs::path& jsonl, const fs::path& db_path,
                                      const std::function<void(int64_t)>& progress) {
  std::ifstream in(jsonl, std::ios::binary);
  if (!in) return make_error(jsonl.string() + ": cannot open");
  std::error_code ec;
  // The index replaces db_path when it is built: never the documents it is built from, nor a
  // directory.
  if (fs::exists(db_path, ec) && fs::equivalent(jsonl, db_path, ec))
    return make_error(db_path.string() + ": is the corpus being indexed (give the index another name)");
  if (fs::is_directory(db_path, ec))
    return make_error(db_path.string() + ": is a directory (give the index's file name)");
  fs::path tmp = db_path;
  tmp += ".building";
  fs::remove(tmp, ec);

  sqlite3* db = nullptr;
  if (sqlite3_open(tmp.c_str(), &db) != SQLITE_OK) {
    Error e = sql_error(db, tmp, "cannot create");
    sqlite3_close_v2(db);
    return e;
  }
  auto fail = [&](Error e) -> Result<IndexStats> {
    sqlite3_close_v2(db);
    fs::remove(tmp, ec);
    return e;
  };
  char* msg = nullptr;
  if (sqlite3_exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;", nullptr, nullptr, &msg) != SQLITE_OK ||
      sqlite3_exec(db, kSchema, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string m = msg ? msg : "";
    sqlite3_free(msg);
    return fail(make_error(tmp.string() + ": " + m));
  }
  Stmt ins;
  if (sqlite3_prepare_v2(db, "INSERT INTO docs(docid, url, title, text) VALUES (?1, ?2, ?3, ?4)", -1, &ins.s,
                         nullptr) != SQLITE_OK) {
    return fail(sql_error(db, tmp, "prepare"));
  }

  IndexStats stats;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      ++stats.skipped;
      continue;
    }
    const std::string where = jsonl.string() + ":" + std::to_string(line_no);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return fail(make_error(where + ": not a JSON object" +
                             (j.is_discarded() && !valid_utf8(line) ? " (it is not UTF-8 text)" : "")));
    const std::string docid = field(j, "docid", "id");
    const std::string text = field(j, "text", "contents");
    if (docid.empty()) return fail(make_error(where + ": missing \"docid\""));
    if (!j.contains("text") && !j.contains("contents")) return fail(make_error(where + ": missing \"text\""));
    // A text that is not a string (an object, null) would be indexed as an empty document.
    const char* text_key = j.contains("text") ? "text" : "contents";
    if (!j[text_key].is_string())
      return fail(
          make_error(where + ": \"" + text_key + "\" is " + std::string(j[text_key].type_name()) + ", not a string"));
    const std::string url = field(j, "url");
    const std::string title = field(j, "title");
    sqlite3_reset(ins.s);
    sqlite3_bind_text(ins.s, 1, docid.data(), static_cast<int>(docid.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(ins.s, 2, url.data(), static_cast<int>(url.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(ins.s, 3, title.data(), static_cast<int>(title.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(ins.s, 4, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(ins.s) != SQLITE_DONE) {
      if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE) {
        return fail(make_error(where + ": duplicate docid \"" + docid + "\""));
      }
      return fail(sql_error(db, tmp, "insert at line " + std::to_string(line_no)));
    }
    ++stats.documents;
    stats.bytes += static_cast<int64_t>(text.size());
    if (progress && stats.documents % 10000 == 0) progress(stats.documents);
  }
  if (in.bad()) return fail(make_error(jsonl.string() + ": read error"));
  const std::string finish =
      "INSERT INTO docs_fts(docs_fts) VALUES('rebuild');"
      "INSERT INTO meta VALUES('documents', '" + std::to_string(stats.documents) + "');"
      "COMMIT; INSERT INTO docs_fts(docs_fts) VALUES('optimize');";
  if (sqlite3_exec(db, finish.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string m = msg ? msg : "";
    sqlite3_free(msg);
    return fail(make_error(tmp.string() + ": " + m));
  }
  sqlite3_finalize(ins.s);
  ins.s = nullptr;
  sqlite3_close_v2(db);
  fs::rename(tmp, db_path, ec);
  if (ec) return make_error(db_path.string() + ": " + ec.message());
  return stats;
}

Corpus::Corpus(sqlite3* db, fs::path path) : db_(db), path_(std::move(path)) {}

Corpus::~Corpus() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<Corpus>> Corpus::open(const fs::path& path) {
  if (!fs::exists(path)) return make_error(path.string() + ": no such corpus (build one with `dsagent index`)");
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    Error e = sql_error(db, path, "cannot open");
    sqlite3_close_v2(db);
    return e;
  }
  std::unique_ptr<Corpus> c(new Corpus(db, path));
  Stmt st;
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'documents'", -1, &st.s, nullptr) != SQLITE_OK) {
    if (sqlite3_errcode(db) == SQLITE_CORRUPT) return damaged(path, sqlite3_errmsg(db));  // e.g. cut short
    return make_error(path.string() + ": not a dsagent corpus (" + sqlite3_errmsg(db) + ")");
  }
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_DONE)
    return make_error(path.string() + ": not a dsagent corpus (its meta table has no document count)");
  if (rc != SQLITE_ROW) return damaged(path, sqlite3_errmsg(db));
  const std::string count = text_column(st.s, 0);
  const char* end = count.data() + count.size();
  if (auto [p, ec] = std::from_chars(count.data(), end, c->size_); ec != std::errc() || p != end || c->size_ < 0)
    return damaged(path, "its document count is '" + one_line_excerpt(count, 40) + "', not a number");
  if (auto ok = c->check_index(); !ok) return ok.error();
  return c;
}

Result<void> Corpus::check_index() const {
  for (const char* sql : {"SELECT id, docid, title, substr(text, 1, 200) FROM docs ORDER BY id LIMIT 1",
                          "SELECT id, docid, title, substr(text, 1, 200) FROM docs ORDER BY id DESC LIMIT 1"}) {
    Stmt doc;
    if (sqlite3_prepare_v2(db_, sql, -1, &doc.s, nullptr) != SQLITE_OK) return damaged(path_, sqlite3_errmsg(db_));
    int rc = sqlite3_step(doc.s);
    if (rc == SQLITE_DONE) return {};  // no documents
    if (rc != SQLITE_ROW) return damaged(path_, sqlite3_errmsg(db_));
    const std::string words = fts_match_expression(text_column(doc.s, 2) + " " + text_column(doc.s, 3));
    if (words.empty()) continue;
    Stmt hit;
    if (sqlite3_prepare_v2(db_, "SELECT rowid FROM docs_fts WHERE docs_fts MATCH ?1 AND rowid = ?2", -1, &hit.s,
                           nullptr) != SQLITE_OK)
      return damaged(path_, sqlite3_errmsg(db_));
    sqlite3_bind_text(hit.s, 1, words.data(), static_cast<int>(words.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(hit.s, 2, sqlite3_column_int64(doc.s, 0));
    rc = sqlite3_step(hit.s);
    if (rc == SQLITE_DONE)
      return damaged(path_, "its search index does not find document '" + one_line_excerpt(text_column(doc.s, 1), 80) +
                                "' by its own words");
    if (rc != SQLITE_ROW) return damaged(path_, sqlite3_errmsg(db_));
  }
  return {};
}

Result<std::vector<CorpusHit>> Corpus::search(std::string_view query, int k, size_t snippet_chars) const {
  std::vector<CorpusHit> hits;
  const std::string expr = fts_match_expression(query);
  if (expr.empty() || k <= 0) return hits;
  Stmt st;
  if (sqlite3_prepare_v2(db_, kSearchSql, -1, &st.s, nullptr) != SQLITE_OK) return sql_error(db_, path_, "search");
  sqlite3_bind_text(st.s, 1, expr.data(), static_cast<int>(expr.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(st.s, 2, k);
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    CorpusHit h;
    h.docid = text_column(st.s, 0);
    h.url = text_column(st.s, 1);
    h.title = text_column(st.s, 2);
    h.score = sqlite3_column_double(st.s, 3);
    h.snippet = cut_utf8(text_column(st.s, 4), snippet_chars);
    hits.push_back(std::move(h));
  }
  if (rc != SQLITE_DONE) return sql_error(db_, path_, "search");
  return hits;
}

Result<std::optional<CorpusDoc>> Corpus::get(std::string_view key) const {
  for (const char* sql : {"SELECT docid, url, title, text FROM docs WHERE docid = ?1",
                          "SELECT docid, url, title, text FROM docs WHERE url = ?1 ORDER BY id LIMIT 1"}) {
    Stmt st;
    if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK) return sql_error(db_, path_, "lookup");
    sqlite3_bind_text(st.s, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    const int rc = sqlite3_step(st.s);
    if (rc == SQLITE_ROW) {
      return std::optional<CorpusDoc>(
          CorpusDoc{text_column(st.s, 0), text_column(st.s, 1), text_column(st.s, 2), text_column(st.s, 3)});
    }
    if (rc != SQLITE_DONE) return sql_error(db_, path_, "lookup");
  }
  return std::optional<CorpusDoc>();
}

}  // namespace dsa
