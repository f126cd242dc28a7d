// The web as a browsing backend: search through a search API, open pages by fetching them.
//
// Search APIs:
//   searxng  GET {base_url}/search?q=QUERY&format=json -> results[].{url, title, content}
//            (the instance must list `json` under search.formats in its settings.yml)
//   json     any JSON API: a url template with {query} (url-encoded) and {topn}, optionally a JSON
//            POST body template with the same placeholders ({query} JSON-escaped), and paths to the
//            results array and to each result's url, title and snippet ("/web/results" or
//            "web.results"). Fits Brave-, Serper- and Tavily-like responses.
// An API key is read from an environment variable at each search and sent in a header built from
// a template ("X-Subscription-Token: {key}"); it never appears in errors, pages or logs.
//
// Pages: fetched with timeouts, a byte cap and a redirect limit, then turned into text with
// numbered links (html_text.hpp). No robots.txt handling: one page is fetched per model request.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "engine/api/result.hpp"
#include "engine/api/types.hpp"
#include "tools/browse/browser.hpp"

namespace dsa {

enum class WebSearchApi { searxng, json };

struct WebSearchConfig {
  WebSearchApi api = WebSearchApi::searxng;
  std::string base_url;       // searxng: the instance, e.g. "http://localhost:8888"
  std::string url_template;   // json: e.g. "https://api.search.brave.com/res/v1/web/search?q={query}&count={topn}"
  json body_template;         // json: POST this body when not null, e.g. {"q": "{query}", "num": "{topn}"}:
                              // "{query}" inside strings is replaced, a string "{topn}" becomes the number
  std::string results_path = "/results";
  std::string url_field = "/url";
  std::string title_field = "/title";
  std::string snippet_field = "/content";
  std::string api_key_env;                                  // empty: no key
  std::string api_key_header = "Authorization: Bearer {key}";
  int connect_timeout_ms = 10000;
  int timeout_ms = 30000;            // per request, redirects included
  size_t max_page_bytes = 2u << 20;  // pages are cut here (and say so)
  int max_redirects = 5;
  std::string user_agent = "dsagent/1.0";
};

// From a JSON object (the "web" section of a config file). Keys: api ("searxng" | "json"),
// base_url, url, body (an object, the template above), results, url_field,
// title_field, snippet_field, api_key_env, api_key_header, connect_timeout_ms, timeout_ms,
// max_page_bytes, max_redirects, user_agent. Unknown keys are errors; messages start with `where`.
Result<WebSearchConfig> parse_web_search_config(const json& j, std::string_view where);

std::shared_ptr<BrowseBackend> make_web_backend(WebSearchConfig config);

}  // namespace dsa
