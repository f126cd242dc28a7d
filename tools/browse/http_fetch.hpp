// One HTTP GET (or JSON POST) through libcurl for the web browsing backend: connect and total
// timeouts, a cap on the body bytes kept, redirects followed up to a limit, http(s) only. Knows
// nothing about HTML or search APIs; html_text and web_backend decide what a body means.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

struct HttpFetchRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"; never written to errors or logs (API keys)
  std::string post_json;             // non-empty: POST this body as application/json instead of GET
  int connect_timeout_ms = 10000;
  int total_timeout_ms = 30000;      // the whole transfer, redirects included
  size_t max_bytes = 5u << 20;       // body bytes kept; the transfer stops past them
  int max_redirects = 5;
  std::string user_agent = "dsagent/1.0";
};

struct HttpFetchResponse {
  std::string final_url;     // after redirects
  long status = 0;
  std::string content_type;  // as sent, e.g. "text/html; charset=utf-8"; empty when absent
  std::string body;          // decoded (gzip/deflate), at most max_bytes
  bool truncated = false;    // the body went on past max_bytes
};

// Errors are one line naming the url: a timeout, an unresolvable host, a refused connection, too
// many redirects, or an HTTP status >= 400 (with its reason phrase and, for text or JSON bodies,
// the start of the body, which is where APIs explain a refusal).
Result<HttpFetchResponse> http_fetch(const HttpFetchRequest& request);

// The standard reason phrase of an HTTP status ("Not Found" for 404); "" for unknown codes.
const char* http_reason_phrase(long status);

}  // namespace dsa
