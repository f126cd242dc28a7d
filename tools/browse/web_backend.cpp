// The web browsing backend: search APIs and page fetch (see web_backend.hpp).
#include "tools/browse/web_backend.hpp"

#include <cctype>
#include <cstdlib>
#include <set>

#include "tools/browse/html_text.hpp"
#include "tools/browse/http_fetch.hpp"

namespace dsa {

namespace {

constexpr size_t kMaxSearchResponseBytes = 8u << 20;

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// "/web/results" as is; "web.results" -> "/web/results"; "" -> the whole document.
Result<json::json_pointer> json_path(const std::string& path) {
  std::string pointer = path;
  if (!path.empty() && path[0] != '/') pointer = "/" + replace_all(path, ".", "/");
  try {
    return json::json_pointer(pointer);
  } catch (const json::exception&) {
    return make_error("'" + path + "' is not a JSON path (write /a/b/0 or a.b.0)");
  }
}

json fill_body(const json& tmpl, std::string_view query, int topn) {
  if (tmpl.is_string()) {
    const std::string& s = tmpl.get_ref<const std::string&>();
    if (s == "{topn}") return topn;
    return replace_all(replace_all(s, "{query}", query), "{topn}", std::to_string(topn));
  }
  if (tmpl.is_structured()) {
    json out = tmpl;
    for (auto& [k, v] : out.items()) v = fill_body(v, query, topn);
    return out;
  }
  return tmpl;
}

std::string field_text(const json& item, const json::json_pointer& p) {
  if (!item.contains(p)) return "";
  const json& v = item.at(p);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  return "";
}

// Snippets of some APIs carry markup (<strong>) and entities.
std::string plain_snippet(const std::string& s) {
  if (s.find_first_of("<&") == std::string::npos) return s;
  return html_to_text(s, "").text;
}

class WebBackend final : public BrowseBackend {
 public:
  explicit WebBackend(WebSearchConfig c) : cfg_(std::move(c)) {}
  std::string name() const override { return "web"; }

  Result<std::vector<SearchResult>> search(std::string_view query, int topn) override {
    HttpFetchRequest req = request();
    req.max_bytes = kMaxSearchResponseBytes;
    if (cfg_.api == WebSearchApi::searxng) {
      std::string base = cfg_.base_url;
      while (!base.empty() && base.back() == '/') base.pop_back();
      req.url = base + "/search?q=" + url_encode(query) + "&format=json";
    } else {
      req.url = replace_all(replace_all(cfg_.url_template, "{query}", url_encode(query)), "{topn}", std::to_string(topn));
      if (!cfg_.body_template.is_null()) req.post_json = fill_body(cfg_.body_template, query, topn).dump();
    }
    if (!cfg_.api_key_env.empty()) {
      const char* key = std::getenv(cfg_.api_key_env.c_str());
      if (!key || !key[0]) {
        return make_error("the search API key variable " + cfg_.api_key_env + " (api_key_env) is not set");
      }
      req.headers.push_back(replace_all(cfg_.api_key_header, "{key}", key));
    }
    req.headers.push_back("Accept: application/json");
    auto resp = http_fetch(req);
    if (!resp) {
      if (cfg_.api == WebSearchApi::searxng && resp.error().message.find("HTTP 403") != std::string::npos) {
        return make_error(resp.error().message + " (does the SearXNG instance list json in search.formats?)");
      }
      return resp.error();
    }
    auto doc = json::parse(resp->body, nullptr, false);
    if (doc.is_discarded()) {
      return make_error("the search API at " + req.url + " did not answer JSON (Content-Type '" + resp->content_type +
                        "'" + (resp->truncated ? ", response over 8 MiB" : "") + ")");
    }
    DSA_TRY(results_at, json_path(cfg_.results_path));
    DSA_TRY(url_at, json_path(cfg_.url_field));
    DSA_TRY(title_at, json_path(cfg_.title_field));
    DSA_TRY(snippet_at, json_path(cfg_.snippet_field));
    if (!doc.contains(results_at) || !doc.at(results_at).is_array()) {
      return make_error("the search API response has no results array at '" + cfg_.results_path + "'");
    }
    std::vector<SearchResult> out;
    for (const json& item : doc.at(results_at)) {
      if (static_cast<int>(out.size()) >= topn) break;
      if (!item.is_object()) continue;
      SearchResult r;
      r.url = field_text(item, url_at);
      if (r.url.empty()) continue;
      r.id = r.url;
      r.title = field_text(item, title_at);
      r.snippet = plain_snippet(field_text(item, snippet_at));
      if (auto s = item.find("score"); s != item.end() && s->is_number()) r.score = s->get<double>();
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<FetchedDoc> fetch(std::string_view id_or_url) override {
    std::string url(id_or_url);
    while (!url.empty() && url.back() == ' ') url.pop_back();
    while (!url.empty() && url.front() == ' ') url.erase(0, 1);
    if (url.find("://") == std::string::npos) {
      // A bare host ("example.org/page") as models often write it.
      if (url.find('.') == std::string::npos || url.find(' ') != std::string::npos) {
        return make_error("'" + url + "' is not a url (the web backend opens http(s) urls or link ids)");
      }
      url = "https://" + url;
    }
    HttpFetchRequest req = request();
    req.url = url;
    req.max_bytes = cfg_.max_page_bytes;
    req.headers.push_back("Accept: text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.8");
    DSA_TRY(resp, http_fetch(req));
    PageText page = body_to_text(resp.content_type, resp.body, resp.final_url);
    if (resp.truncated) {
      page.text += "\n\n[The page was cut at " + std::to_string(cfg_.max_page_bytes) + " bytes; the rest was not fetched.]";
    }
    return FetchedDoc{resp.final_url, resp.final_url, std::move(page.title), std::move(page.text), std::move(page.links)};
  }

 private:
  HttpFetchRequest request() const {
    HttpFetchRequest r;
    r.connect_timeout_ms = cfg_.connect_timeout_ms;
    r.total_timeout_ms = cfg_.timeout_ms;
    r.max_redirects = cfg_.max_redirects;
    r.user_agent = cfg_.user_agent;
    return r;
  }

  WebSearchConfig cfg_;
};

}  // namespace

Result<WebSearchConfig> parse_web_search_config(const json& j, std::string_view where) {
  const std::string at = std::string(where) + ": ";
  if (!j.is_object()) return make_error(at + "the web search settings must be a JSON object");
  static const std::set<std::string> known = {
      "api",         "base_url",       "url",       "body",           "results",       "url_field",
      "title_field", "snippet_field",  "api_key_env", "api_key_header", "connect_timeout_ms", "timeout_ms",
      "max_page_bytes", "max_redirects", "user_agent"};
  for (const auto& [key, value] : j.items()) {
    if (!known.count(key)) return make_error(at + "unknown field '" + key + "'");
  }
  WebSearchConfig c;
  auto text = [&](const char* key, std::string& out) -> Result<void> {
    if (!j.contains(key)) return {};
    if (!j[key].is_string()) return make_error(at + "field '" + key + "' must be a string");
    out = j[key].get<std::string>();
    return {};
  };
  auto number = [&](const char* key, int64_t min, int64_t max, auto& out) -> Result<void> {
    if (!j.contains(key)) return {};
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < min || j[key].get<int64_t>() > max) {
      return make_error(at + "field '" + key + "' must be an integer from " + std::to_string(min) + " to " +
                        std::to_string(max));
    }
    out = static_cast<std::decay_t<decltype(out)>>(j[key].get<int64_t>());
    return {};
  };
  std::string api = "searxng";
  for (auto r : {text("api", api), text("base_url", c.base_url), text("url", c.url_template),
                 text("results", c.results_path), text("url_field", c.url_field), text("title_field", c.title_field),
                 text("snippet_field", c.snippet_field), text("api_key_env", c.api_key_env),
                 text("api_key_header", c.api_key_header), text("user_agent", c.user_agent),
                 number("connect_timeout_ms", 1, 600000, c.connect_timeout_ms), number("timeout_ms", 1, 3600000, c.timeout_ms),
                 number("max_page_bytes", 1024, int64_t{1} << 30, c.max_page_bytes),
                 number("max_redirects", 0, 50, c.max_redirects)}) {
    if (!r) return r.error();
  }
  if (api == "searxng") {
    c.api = WebSearchApi::searxng;
    if (!c.base_url.starts_with("http://") && !c.base_url.starts_with("https://")) {
      return make_error(at + "field 'base_url' must be the http(s) url of the SearXNG instance");
    }
  } else if (api == "json") {
    c.api = WebSearchApi::json;
    if (!c.url_template.starts_with("http://") && !c.url_template.starts_with("https://")) {
      return make_error(at + "field 'url' must be an http(s) url template");
    }
    if (c.url_template.find("{query}") == std::string::npos && !j.contains("body")) {
      return make_error(at + "field 'url' has no {query} and there is no 'body' to carry the query");
    }
  } else {
    return make_error(at + "field 'api' must be \"searxng\" or \"json\", not \"" + api + "\"");
  }
  if (j.contains("body")) {
    if (!j["body"].is_object()) return make_error(at + "field 'body' must be a JSON object (the POST body template)");
    c.body_template = j["body"];
  }
  for (const auto& [key, path] : {std::pair{"results", &c.results_path}, std::pair{"url_field", &c.url_field},
                                  std::pair{"title_field", &c.title_field}, std::pair{"snippet_field", &c.snippet_field}}) {
    if (auto p = json_path(*path); !p) return make_error(at + "field '" + key + "': " + p.error().message);
  }
  if (!c.api_key_env.empty() && c.api_key_header.find("{key}") == std::string::npos) {
    return make_error(at + "field 'api_key_header' must contain {key}, e.g. \"X-API-KEY: {key}\"");
  }
  return c;
}

std::shared_ptr<BrowseBackend> make_web_backend(WebSearchConfig config) {
  return std::make_shared<WebBackend>(std::move(config));
}

}  // namespace dsa
