// The web browsing backend against a loopback HTTP server: SearXNG and generic JSON search APIs,
// page fetch with links, redirects, timeouts, size caps, non-HTML bodies, HTTP errors, and the
// config parser.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>

#include "tests/http_test_server.hpp"
#include "tools/browse/browser.hpp"
#include "tools/browse/http_fetch.hpp"
#include "tools/browse/web_backend.hpp"

using namespace dsa;
using dsa::test::HttpTestServer;

namespace {

HttpTestServer::Response html(std::string body) {
  HttpTestServer::Response r;
  r.headers = {{"Content-Type", "text/html; charset=utf-8"}};
  r.chunks = {{std::move(body)}};
  return r;
}

HttpTestServer::Response redirect(int status, std::string location) {
  HttpTestServer::Response r;
  r.status = status;
  r.headers = {{"Location", std::move(location)}};
  return r;
}

WebSearchConfig searxng(const HttpTestServer& server) {
  WebSearchConfig c;
  c.base_url = server.url() + "/";
  c.connect_timeout_ms = 2000;
  c.timeout_ms = 5000;
  return c;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("web: SearXNG results become a search page whose links open the pages") {
  HttpTestServer site({html("<title>Hekla</title><p>Hekla erupted in <b>1104</b>.</p>")});
  const std::string page_url = site.url() + "/wiki/Hekla";
  json results = {{"query", "hekla eruption"},
                  {"results",
                   {{{"url", page_url}, {"title", "Hekla - Wiki"}, {"content", "Hekla is a volcano &amp; more"}, {"score", 2.5}},
                    {{"title", "an item without url is skipped"}},
                    {{"url", "https://www.example.org/b"}, {"title", "Second"}, {"content", "two"}}}}};
  HttpTestServer engine({HttpTestServer::json_body(200, results.dump())});
  Browser b(make_web_backend(searxng(engine)));
  auto obs = b.search("hekla eruption", 10);
  REQUIRE_MESSAGE(!obs.is_error, obs.text);
  auto reqs = engine.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "GET");
  CHECK(reqs[0].path == "/search?q=hekla%20eruption&format=json");
  const Page& p = b.pages().back();
  REQUIRE(p.links.size() == 2);
  CHECK(p.links[0].target == page_url);
  CHECK(p.links[1].target == "https://www.example.org/b");
  CHECK(contains(obs.text, link_marker(0, "Hekla - Wiki", "127.0.0.1")));
  CHECK(contains(obs.text, link_marker(1, "Second", "example.org")));
  CHECK(contains(obs.text, "Hekla is a volcano & more"));
  CHECK(!contains(obs.text, "without url"));

  auto opened = b.open("0", -1, -1, -1);
  REQUIRE_MESSAGE(!opened.is_error, opened.text);
  CHECK(contains(opened.text, "Hekla erupted in 1104."));
  CHECK(b.pages().back().title == "Hekla");
  CHECK(b.pages().back().url == page_url);
  REQUIRE(site.requests().size() == 1);
  CHECK(site.requests()[0].path == "/wiki/Hekla");
}

TEST_CASE("web: topn bounds the results; a non-JSON answer or a missing array is an error") {
  json results = {{"results", json::array()}};
  for (int i = 0; i < 5; ++i) results["results"].push_back({{"url", "https://e.org/" + std::to_string(i)}, {"title", "t"}});
  HttpTestServer server({HttpTestServer::json_body(200, results.dump()), html("<p>not json</p>"),
                         HttpTestServer::json_body(200, "{\"answers\": []}")});
  auto backend = make_web_backend(searxng(server));
  auto hits = backend->search("q", 3);
  REQUIRE(hits.ok());
  CHECK(hits->size() == 3);
  auto not_json = backend->search("q", 3);
  REQUIRE(!not_json.ok());
  CHECK(contains(not_json.error().message, "did not answer JSON"));
  auto no_array = backend->search("q", 3);
  REQUIRE(!no_array.ok());
  CHECK(contains(no_array.error().message, "'/results'"));
}

TEST_CASE("web: a generic JSON API by url template, result paths and an API key header") {
  json brave = {{"web", {{"results", {{{"url", "https://a.org/x"}, {"title", "A"}, {"description", "<strong>Hekla</strong> erupts"}},
                                      {{"url", "https://b.org/y"}, {"title", "B"}, {"description", "plain"}}}}}}};
  HttpTestServer server({HttpTestServer::json_body(200, brave.dump())});
  WebSearchConfig c;
  c.api = WebSearchApi::json;
  c.url_template = server.url() + "/res/v1/web/search?q={query}&count={topn}";
  c.results_path = "web.results";
  c.snippet_field = "description";
  c.api_key_env = "DSA_TEST_WEB_SEARCH_KEY";
  c.api_key_header = "X-Subscription-Token: {key}";
  ::setenv("DSA_TEST_WEB_SEARCH_KEY", "secret-123", 1);
  Browser b(make_web_backend(c));
  auto obs = b.search("a&b c", 3);
  REQUIRE_MESSAGE(!obs.is_error, obs.text);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path == "/res/v1/web/search?q=a%26b%20c&count=3");
  CHECK(reqs[0].header("x-subscription-token") == "secret-123");
  CHECK(!contains(obs.text, "secret-123"));
  REQUIRE(b.pages().back().links.size() == 2);
  CHECK(b.pages().back().links[1].target == "https://b.org/y");
  CHECK(contains(obs.text, "Hekla erupts"));
  CHECK(!contains(obs.text, "<strong>"));

  // Without the variable no request is made, and the error names the variable.
  ::unsetenv("DSA_TEST_WEB_SEARCH_KEY");
  auto missing = b.search("x", 3);
  CHECK(missing.is_error);
  CHECK(contains(missing.text, "DSA_TEST_WEB_SEARCH_KEY"));
  CHECK(server.requests().size() == 1);
}

TEST_CASE("web: a generic JSON API by POST body template") {
  json serper = {{"organic", {{{"link", "https://a.org/x"}, {"title", "A"}, {"snippet", "first"}}}}};
  HttpTestServer server({HttpTestServer::json_body(200, serper.dump())});
  auto cfg = parse_web_search_config(
      json::parse(R"({"api": "json", "url": ")" + server.url() +
                  R"(/search", "body": {"q": "{query}", "num": "{topn}", "gl": "us"},
                     "results": "/organic", "url_field": "link", "snippet_field": "snippet"})"),
      "web.json");
  REQUIRE_MESSAGE(cfg.ok(), cfg.error().message);
  auto hits = make_web_backend(*cfg)->search("say \"hi\"", 5);
  REQUIRE_MESSAGE(hits.ok(), hits.error().message);
  REQUIRE(hits->size() == 1);
  CHECK((*hits)[0].url == "https://a.org/x");
  CHECK((*hits)[0].snippet == "first");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].header("content-type") == "application/json");
  CHECK(json::parse(reqs[0].body) == json{{"q", "say \"hi\""}, {"num", 5}, {"gl", "us"}});
}

TEST_CASE("web: an HTML page shows numbered links and open(id) follows a relative one") {
  HttpTestServer server({
      html("<html><head><title>Start</title></head><body><h1>Start</h1><p>Go to the <a href=\"next?p=2\">next "
           "page</a> or <a href=\"https://other.example/\">elsewhere</a>.</p></body></html>"),
      html("<title>Next</title><p>You made it.</p>"),
  });
  Browser b(make_web_backend(searxng(server)));
  auto first = b.open(server.url() + "/docs/start", -1, -1, -1);
  REQUIRE_MESSAGE(!first.is_error, first.text);
  CHECK(contains(first.text, "Go to the " + link_marker(0, "next page", "127.0.0.1") + " or " +
                                 link_marker(1, "elsewhere", "other.example") + "."));
  REQUIRE(b.pages().back().links.size() == 2);
  CHECK(b.pages().back().links[0].target == server.url() + "/docs/next?p=2");
  auto next = b.open("0", -1, -1, -1);
  REQUIRE_MESSAGE(!next.is_error, next.text);
  CHECK(contains(next.text, "You made it."));
  REQUIRE(server.requests().size() == 2);
  CHECK(server.requests()[1].path == "/docs/next?p=2");
  CHECK(server.requests()[1].header("user-agent").starts_with("dsagent"));
}

TEST_CASE("web: redirects are followed and links resolve against the final url") {
  HttpTestServer server({
      redirect(302, "/b"),
      redirect(301, "/dir/c"),
      html("<title>Final</title><p>Arrived. <a href=\"d\">d</a></p>"),
  });
  auto backend = make_web_backend(searxng(server));
  auto doc = backend->fetch(server.url() + "/a");
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  CHECK(doc->url == server.url() + "/dir/c");
  CHECK(doc->title == "Final");
  REQUIRE(doc->links.size() == 1);
  CHECK(doc->links[0].target == server.url() + "/dir/d");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[1].path == "/b");
  CHECK(reqs[2].path == "/dir/c");
}

TEST_CASE("web: too many redirects is an error observation") {
  HttpTestServer server({redirect(302, "/1"), redirect(302, "/2"), redirect(302, "/3"), redirect(302, "/4")});
  auto cfg = searxng(server);
  cfg.max_redirects = 2;
  Browser b(make_web_backend(cfg));
  auto obs = b.open(server.url() + "/0", -1, -1, -1);
  CHECK(obs.is_error);
  CHECK(contains(obs.text, "too many redirects"));
  CHECK(server.requests().size() == 3);
}

TEST_CASE("web: a slow server times out quickly") {
  HttpTestServer::Response slow = html("");
  slow.chunks = {{"<p>start</p>"}, {"<p>late</p>", 5000}};
  HttpTestServer server({slow});
  auto cfg = searxng(server);
  cfg.timeout_ms = 300;
  Browser b(make_web_backend(cfg));
  const auto t0 = std::chrono::steady_clock::now();
  auto obs = b.open(server.url() + "/slow", -1, -1, -1);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(obs.is_error);
  CHECK(contains(obs.text, "timed out"));
  CHECK(seconds < 2.0);
}

TEST_CASE("web: a big page is cut at the byte cap, with a note") {
  HttpTestServer::Response big = html("");
  big.chunks.clear();
  for (int i = 0; i < 40; ++i) big.chunks.push_back({"<p>" + std::string(993, 'a' + static_cast<char>(i % 26)) + "</p>"});  // 1000 bytes
  HttpTestServer server({big});
  auto cfg = searxng(server);
  cfg.max_page_bytes = 5000;
  auto doc = make_web_backend(cfg)->fetch(server.url() + "/big");
  REQUIRE_MESSAGE(doc.ok(), doc.error().message);
  const std::string note = "[The page was cut at 5000 bytes";
  const size_t at = doc->text.find(note);
  REQUIRE(at != std::string::npos);
  CHECK(at < 5000);
  CHECK(contains(doc->text, std::string(993, 'e')));  // the fifth paragraph, bytes 4000-4999
  CHECK(!contains(doc->text, std::string(993, 'f')));
}

TEST_CASE("web: images and binary data are one line; text and JSON are shown as text") {
  const std::string png = std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16) + std::string(100, '\0');
  HttpTestServer::Response image;
  image.headers = {{"Content-Type", "image/png"}};
  image.chunks = {{png}};
  HttpTestServer::Response octets = image;
  octets.headers = {{"Content-Type", "application/octet-stream"}};
  HttpTestServer server({image, octets, HttpTestServer::json_body(200, "{\"k\":\"v\"}")});
  auto backend = make_web_backend(searxng(server));
  auto img = backend->fetch(server.url() + "/a.png");
  REQUIRE(img.ok());
  CHECK(img->text.find('\n') == std::string::npos);
  CHECK(contains(img->text, "image/png"));
  CHECK(!contains(img->text, "PNG"));
  auto bin = backend->fetch(server.url() + "/blob");
  REQUIRE(bin.ok());
  CHECK(bin->text.find('\n') == std::string::npos);
  CHECK(contains(bin->text, "application/octet-stream"));
  auto js = backend->fetch(server.url() + "/data.json");
  REQUIRE(js.ok());
  CHECK(json::parse(js->text) == json{{"k", "v"}});
}

TEST_CASE("web: HTTP errors name the status; bad ids are refused") {
  HttpTestServer::Response missing = html("<h1>Not here</h1>");
  missing.status = 404;
  HttpTestServer server({missing, HttpTestServer::json_body(403, "{\"error\": \"format not allowed\"}")});
  Browser b(make_web_backend(searxng(server)));
  auto obs = b.open(server.url() + "/gone", -1, -1, -1);
  CHECK(obs.is_error);
  CHECK(contains(obs.text, "HTTP 404 Not Found"));
  CHECK(contains(obs.text, "/gone"));
  auto search = b.search("q", 3);
  CHECK(search.is_error);
  CHECK(contains(search.text, "HTTP 403 Forbidden"));
  CHECK(contains(search.text, "format not allowed"));
  CHECK(contains(search.text, "search.formats"));
  std::string closed_url;
  {
    HttpTestServer gone({});
    closed_url = gone.url() + "/x";
  }
  auto refused = b.open(closed_url, -1, -1, -1);
  CHECK(refused.is_error);
  CHECK(contains(refused.text, "cannot connect"));
  auto bad = b.open("not a url", -1, -1, -1);
  CHECK(bad.is_error);
  CHECK(contains(bad.text, "not a url"));
  CHECK(server.requests().size() == 2);
}

TEST_CASE("web: config parsing and its errors") {
  auto ok = parse_web_search_config(
      json::parse(R"({"api": "json", "url": "https://api.example/s?q={query}&n={topn}", "results": "data.items",
                      "title_field": "/name", "api_key_env": "K", "api_key_header": "X-Key: {key}",
                      "timeout_ms": 1500, "max_page_bytes": 65536, "max_redirects": 0})"),
      "cfg.json");
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  CHECK(ok->api == WebSearchApi::json);
  CHECK(ok->results_path == "data.items");
  CHECK(ok->title_field == "/name");
  CHECK(ok->timeout_ms == 1500);
  CHECK(ok->max_page_bytes == 65536);
  CHECK(ok->max_redirects == 0);
  CHECK(ok->api_key_header == "X-Key: {key}");
  auto sx = parse_web_search_config(json::parse(R"({"base_url": "http://localhost:8888"})"), "cfg.json");
  REQUIRE(sx.ok());
  CHECK(sx->api == WebSearchApi::searxng);

  auto err = [](const std::string& text) {
    auto r = parse_web_search_config(json::parse(text), "cfg.json");
    REQUIRE(!r.ok());
    CHECK(r.error().message.starts_with("cfg.json: "));
    return r.error().message;
  };
  CHECK(contains(err(R"({"base_url": "http://x", "timout_ms": 5})"), "unknown field 'timout_ms'"));
  CHECK(contains(err(R"({"api": "bing"})"), "'api'"));
  CHECK(contains(err(R"({"api": "searxng"})"), "'base_url'"));
  CHECK(contains(err(R"({"api": "json", "url": "https://x/s"})"), "{query}"));
  CHECK(contains(err(R"({"base_url": "http://x", "timeout_ms": "5"})"), "'timeout_ms'"));
  CHECK(contains(err(R"({"base_url": "http://x", "max_redirects": -1})"), "'max_redirects'"));
  CHECK(contains(err(R"({"api": "json", "url": "https://x/s", "body": "q={query}"})"), "'body'"));
  CHECK(contains(err(R"({"base_url": "http://x", "api_key_env": "K", "api_key_header": "Authorization"})"), "{key}"));
  CHECK(contains(err(R"({"base_url": "http://x", "results": "a~b"})"), "'results'"));
  CHECK(contains(err("[1]"), "JSON object"));
}
