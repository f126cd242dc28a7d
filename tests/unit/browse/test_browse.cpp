// The offline corpus (SQLite FTS5) and the browsing tools over it: ranking, bad corpus lines,
// pages, cursors, scrolling, find, and the BrowseComp-Plus tool contract.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <fstream>

#include "tests/test_support.hpp"
#include "tools/browse/browser.hpp"
#include "tools/browse/corpus.hpp"

using namespace dsa;
using namespace dsa::test;
namespace fs = std::filesystem;

namespace {

std::string long_text(const std::string& word, int lines) {
  std::string t;
  for (int i = 0; i < lines; ++i) t += "Line " + std::to_string(i) + " of the " + word + " document.\n";
  return t;
}

struct CorpusFixture {
  TempDir dir{"dsa-browse"};
  std::shared_ptr<Corpus> corpus;
  CorpusFixture() {
    json docs = json::array({
        {{"docid", "d1"}, {"url", "https://www.example.org/volcano"}, {"title", "Volcanoes of Iceland"},
         {"text", "Hekla is one of the most active volcanoes in Iceland. It erupted in 1104."}},
        {{"docid", "d2"}, {"url", "https://example.com/rivers"}, {"title", "Rivers"},
         {"text", "The Thjorsa is the longest river in Iceland."}},
        {{"docid", "d5"}, {"url", "https://www.example.org/log"}, {"title", "Eruption log"},
         {"text", "Hekla eruption log, one line per entry.\n\n" + long_text("log", 150)}},
        {{"id", 3}, {"title", "Glaciers"}, {"contents", "Vatnajokull is the largest glacier. Grímsvötn lies under it."}},
        {{"docid", "d4"}, {"url", "https://example.net/cooking"}, {"title", "Cooking"}, {"text", "Bread, butter and salt."}},
    });
    std::string jsonl;
    for (auto& d : docs) jsonl += d.dump() + "\n\n";
    write_text(dir / "corpus.jsonl", jsonl);
    auto stats = build_corpus_index(dir / "corpus.jsonl", dir / "corpus.db");
    REQUIRE_MESSAGE(stats.ok(), stats.error().message);
    CHECK(stats->documents == 5);
    auto c = Corpus::open(dir / "corpus.db");
    REQUIRE_MESSAGE(c.ok(), c.error().message);
    corpus = std::move(c.value());
  }
};

}  // namespace

TEST_CASE("corpus: BM25 ranking, title weight, snippets, lookups") {
  CorpusFixture f;
  CHECK(f.corpus->size() == 5);
  auto hits = f.corpus->search("Iceland volcanoes", 10);
  REQUIRE(hits.ok());
  REQUIRE(hits->size() == 2);
  CHECK((*hits)[0].docid == "d1");  // matches in the title and the text
  CHECK((*hits)[1].docid == "d2");
  CHECK((*hits)[0].score > (*hits)[1].score);
  CHECK((*hits)[0].snippet.find("Hekla") != std::string::npos);

  // Diacritics fold, numeric ids become strings, and a url finds its document.
  auto g = f.corpus->search("grimsvotn", 5);
  REQUIRE(g.ok());
  REQUIRE(g->size() == 1);
  CHECK((*g)[0].docid == "3");
  auto by_url = f.corpus->get("https://example.com/rivers");
  REQUIRE(by_url.ok());
  REQUIRE(by_url->has_value());
  CHECK((*by_url)->docid == "d2");
  auto none = f.corpus->get("nope");
  REQUIRE(none.ok());
  CHECK(!none->has_value());
  CHECK(f.corpus->search("", 5)->empty());
}

TEST_CASE("corpus: queries with FTS5 syntax are taken as plain words") {
  CHECK(fts_match_expression("a \"b\" OR c*") == "\"a\" OR \"b\" OR \"OR\" OR \"c\"");
  CHECK(fts_match_expression("?!") == "");
  CorpusFixture f;
  auto hits = f.corpus->search("\"volcanoes\" AND (NEAR-by) iceland*", 10);
  REQUIRE_MESSAGE(hits.ok(), hits.error().message);
  REQUIRE(hits->size() == 3);  // "and" is a word of the cooking document
  CHECK((*hits)[0].docid == "d1");
}

TEST_CASE("corpus: bad lines are errors naming the file and line; the old index survives") {
  TempDir dir("dsa-browse-bad");
  write_text(dir / "ok.jsonl", "{\"docid\":\"a\",\"text\":\"x\"}\n");
  REQUIRE(build_corpus_index(dir / "ok.jsonl", dir / "c.db").ok());
  struct Case { const char* text; const char* expect; };
  for (const Case& c :
       {Case{"{\"docid\":\"a\",\"text\":\"x\"}\n{\"docid\":\"a\",\"text\":\"y\"}\n", ":2: duplicate docid \"a\""},
        Case{"{\"docid\":\"a\",\"text\":\"x\"}\nnot json\n", ":2: not a JSON object"},
        Case{"{\"text\":\"x\"}\n", ":1: missing \"docid\""}, Case{"{\"docid\":\"q\"}\n", ":1: missing \"text\""},
        Case{"{\"docid\":\"q\",\"text\":{\"a\":1}}\n", ":1: \"text\" is object, not a string"},
        Case{"{\"docid\":\"q\",\"text\":null}\n", ":1: \"text\" is null, not a string"},
        Case{"{\"docid\":\"q\",\"text\":\"caf\xe9\"}\n", ":1: not a JSON object (it is not UTF-8 text)"}}) {
    write_text(dir / "bad.jsonl", c.text);
    auto r = build_corpus_index(dir / "bad.jsonl", dir / "c.db");
    REQUIRE(!r.ok());
    CHECK_MESSAGE(r.error().message.find(c.expect) != std::string::npos, r.error().message);
    CHECK(r.error().message.find("bad.jsonl") != std::string::npos);
  }
  auto c = Corpus::open(dir / "c.db");
  REQUIRE(c.ok());
  CHECK((*c)->size() == 1);
  CHECK(!Corpus::open(dir / "missing.db").ok());
  // The index never replaces its own documents, nor a directory.
  const auto same = build_corpus_index(dir / "ok.jsonl", dir / "ok.jsonl");
  REQUIRE_FALSE(same.ok());
  CHECK(same.error().message ==
        (dir / "ok.jsonl").string() + ": is the corpus being indexed (give the index another name)");
  CHECK(read_text(dir / "ok.jsonl") == "{\"docid\":\"a\",\"text\":\"x\"}\n");
  fs::create_directory(dir / "out");
  const auto into_dir = build_corpus_index(dir / "ok.jsonl", dir / "out");
  REQUIRE_FALSE(into_dir.ok());
  CHECK(into_dir.error().message == (dir / "out").string() + ": is a directory (give the index's file name)");
  CHECK_FALSE(fs::exists(dir / "out.building"));
}

namespace {

// Runs SQL on a corpus file, as a damaged copy would have it.
void tamper(const fs::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  char* msg = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
  std::string error = msg ? msg : "";
  sqlite3_free(msg);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, error);
}

}  // namespace

TEST_CASE("corpus: a file that is not a corpus or a damaged one fails at open with one line") {
  TempDir dir("dsa-browse-damaged");
  write_text(dir / "c.jsonl",
             "{\"docid\":\"first\",\"title\":\"Hekla\",\"text\":\"A volcano.\"}\n"
             "{\"docid\":\"last\",\"text\":\"Rivers of Iceland.\"}\n");
  auto fresh = [&](const char* name) {
    REQUIRE(build_corpus_index(dir / "c.jsonl", dir / name).ok());
    return dir / name;
  };
  auto open_error = [](const fs::path& p) {
    auto c = Corpus::open(p);
    return c.ok() ? std::string("opened") : c.error().message;
  };
  const std::string rebuild = " (rebuild it with `dsagent index`)";
  REQUIRE(Corpus::open(fresh("good.db")).ok());

  for (const char* count : {"lots", "12abc", "", "-3"}) {
    fs::path p = fresh("count.db");
    tamper(p, ("UPDATE meta SET value = '" + std::string(count) + "' WHERE key = 'documents'").c_str());
    CHECK(open_error(p) ==
          p.string() + ": damaged corpus: its document count is '" + count + "', not a number" + rebuild);
  }
  // An index that lost its entries would answer every search with "No results".
  fs::path emptied = fresh("emptied.db");
  tamper(emptied, "INSERT INTO docs_fts(docs_fts) VALUES('delete-all')");
  CHECK(open_error(emptied) ==
        emptied.string() + ": damaged corpus: its search index does not find document 'first' by its own words" +
            rebuild);
  fs::path cut = fresh("cut.db");
  fs::resize_file(cut, fs::file_size(cut) / 2);
  CHECK(open_error(cut) == cut.string() + ": damaged corpus: database disk image is malformed" + rebuild);
  fs::path no_docs = fresh("no_docs.db");
  tamper(no_docs, "DROP TABLE docs");
  CHECK(open_error(no_docs) == no_docs.string() + ": damaged corpus: no such table: docs" + rebuild);

  fs::path no_count = fresh("no_count.db");
  tamper(no_count, "DELETE FROM meta");
  CHECK(open_error(no_count) == no_count.string() + ": not a dsagent corpus (its meta table has no document count)");
  write_text(dir / "junk.db", "this is not a database at all, just text that is long enough\n");
  CHECK(open_error(dir / "junk.db") == (dir / "junk.db").string() + ": not a dsagent corpus (file is not a database)");

  // An empty corpus has nothing to check and opens.
  write_text(dir / "empty.jsonl", "");
  REQUIRE(build_corpus_index(dir / "empty.jsonl", dir / "empty.db").ok());
  CHECK(open_error(dir / "empty.db") == "opened");
}

TEST_CASE("pages: wrapping keeps UTF-8 characters whole and lines within the width") {
  std::string text = "short\n\n\n\nnext paragraph " + std::string(30, 'x') + " " + std::string(40, 'y') + "\n";
  for (int i = 0; i < 40; ++i) text += "é";  // 80 bytes, no space
  auto lines = wrap_text(text, 20);
  CHECK(lines[0] == "short");
  CHECK(lines[1] == "");
  CHECK(lines[2] == "next paragraph");
  for (auto& l : lines) {
    CHECK(l.size() <= 20);
    CHECK((l.empty() || (static_cast<unsigned char>(l[0]) & 0xC0) != 0x80));
  }
  CHECK(url_domain("https://www.a.org:8080/x?y") == "a.org");
  CHECK(url_domain("docid-7", "corpus") == "corpus");
  CHECK(link_marker(3, "T", "a.org") == "【3†T†a.org】");
}

TEST_CASE("browser: search, open by link id, cursors, scrolling and find") {
  CorpusFixture f;
  Browser b(make_corpus_backend(f.corpus), BrowseOptions{});
  auto none = b.open("0", -1, -1, -1);
  CHECK(none.is_error);

  auto s = b.search("Hekla eruption", 10);
  REQUIRE(!s.is_error);
  CHECK(s.text.rfind("[0] Search results for `Hekla eruption`", 0) == 0);
  CHECK(s.text.find("L0: # 【0†Eruption log†example.org】") != std::string::npos);
  CHECK(s.text.find("【1†Volcanoes of Iceland†example.org】") != std::string::npos);

  auto o = b.open("0", 0, -1, 10);
  REQUIRE(!o.is_error);
  CHECK(o.text.rfind("[1] Eruption log (https://www.example.org/log)\n**viewing lines [0 - 9] of 151**\n\nL0: Hekla", 0) == 0);
  CHECK(o.text.find("L10:") == std::string::npos);

  auto scroll = b.open("", 1, 100, 5);
  REQUIRE(!scroll.is_error);
  CHECK(scroll.text.find("**viewing lines [100 - 104] of ") != std::string::npos);
  CHECK(scroll.text.find("L100: Line 98 of the log document.") != std::string::npos);

  auto fd = b.find("LINE 120 OF", 1);
  REQUIRE(!fd.is_error);
  CHECK(fd.text.rfind("[2] Find results for text: `LINE 120 OF` in `Eruption log`", 0) == 0);
  CHECK(fd.text.find("【0†match at L122†example.org】") != std::string::npos);
  auto jump = b.open("0", 2, -1, 3);
  REQUIRE(!jump.is_error);
  CHECK(jump.text.find("L122: Line 120 of the log document.") != std::string::npos);

  CHECK(b.open("9", 0, -1, -1).is_error);   // no such link
  CHECK(b.open("0", 17, -1, -1).is_error);  // no such cursor
  auto by_id = b.open("d4", -1, -1, -1);
  REQUIRE(!by_id.is_error);
  CHECK(by_id.text.find("Bread, butter and salt.") != std::string::npos);
  CHECK(b.open("missing-doc", -1, -1, -1).is_error);
  CHECK(b.retrieved() == std::vector<std::string>{"d5", "d4"});
  CHECK(b.find("zzz", -1).text.find("No `find` results") != std::string::npos);
}

TEST_CASE("browse tools through the registry: both tool sets") {
  CorpusFixture f;
  auto backend = make_corpus_backend(f.corpus);
  ToolContext ctx;
  ctx.workdir = f.dir.path();

  ToolRegistry ds;
  add_browse_tools(ds, std::make_shared<Browser>(backend), BrowseToolSet::deepseek);
  auto r = ds.call(ToolCall{"c1", "search", R"({"query":"glacier","topn":3})"}, ctx);
  REQUIRE(!r.is_error);
  CHECK(r.text.find("【0†Glaciers†corpus】") != std::string::npos);
  auto o = ds.call(ToolCall{"c2", "open", R"({"id":0})"}, ctx);
  REQUIRE(!o.is_error);
  CHECK(o.text.find("Vatnajokull") != std::string::npos);
  CHECK(ds.call(ToolCall{"c3", "find", R"({})"}, ctx).is_error);  // missing pattern

  ToolRegistry bcp;
  BrowseOptions opt;
  opt.bcp_snippet_chars = 20;
  add_browse_tools(bcp, std::make_shared<Browser>(backend, opt), BrowseToolSet::browsecomp_plus);
  auto s = bcp.call(ToolCall{"c1", "search", R"({"query":"Iceland"})"}, ctx);
  REQUIRE(!s.is_error);
  auto hits = json::parse(s.text);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0]["docid"] == "d1");
  CHECK(hits[0]["snippet"].get<std::string>().size() <= 20);
  CHECK(hits[0]["score"].get<double>() > 0);
  auto d = bcp.call(ToolCall{"c2", "get_document", R"({"docid":"d2"})"}, ctx);
  REQUIRE(!d.is_error);
  CHECK(json::parse(d.text)["text"].get<std::string>().rfind("The Thjorsa", 0) == 0);
  CHECK(bcp.call(ToolCall{"c3", "get_document", R"({"docid":"zz"})"}, ctx).is_error);
}
