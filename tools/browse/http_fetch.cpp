// libcurl GET / POST for the web backend (see http_fetch.hpp).
#include "tools/browse/http_fetch.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "tools/truncate.hpp"

namespace dsa {

namespace {

struct Transfer {
  std::string body;
  size_t max_bytes = 0;
  bool truncated = false;
};

// Keeps up to max_bytes; returning less than was given makes libcurl stop with CURLE_WRITE_ERROR,
// which http_fetch then reads as "truncated", not as a failure.
size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  const size_t room = t->max_bytes - std::min(t->max_bytes, t->body.size());
  if (bytes > room) {
    t->body.append(data, room);
    t->truncated = true;
    return 0;
  }
  t->body.append(data, bytes);
  return bytes;
}

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool is_textual(std::string_view content_type) {
  return content_type.starts_with("text/plain") || content_type.find("json") != std::string_view::npos;
}

struct EasyHandle {
  CURL* easy = curl_easy_init();
  curl_slist* headers = nullptr;
  ~EasyHandle() {
    curl_slist_free_all(headers);
    if (easy) curl_easy_cleanup(easy);
  }
};

}  // namespace

const char* http_reason_phrase(long status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 418: return "I'm a teapot";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

Result<HttpFetchResponse> http_fetch(const HttpFetchRequest& request) {
  init_curl_once();
  EasyHandle h;
  if (!h.easy) return make_error("fetch " + request.url + ": cannot create a libcurl handle");
  for (const auto& line : request.headers) h.headers = curl_slist_append(h.headers, line.c_str());
  if (!request.post_json.empty()) h.headers = curl_slist_append(h.headers, "Content-Type: application/json");

  Transfer t;
  t.max_bytes = request.max_bytes;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* e = h.easy;
  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(request.max_redirects));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout_ms));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(request.total_timeout_ms));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // whatever this libcurl can decode
  curl_easy_setopt(e, CURLOPT_USERAGENT, request.user_agent.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  if (!request.post_json.empty()) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.post_json.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.post_json.size()));
  }

  const CURLcode rc = curl_easy_perform(e);
  HttpFetchResponse out;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out.status);
  char* final_url = nullptr;
  curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &final_url);
  out.final_url = final_url ? final_url : request.url;
  char* content_type = nullptr;
  curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &content_type);
  if (content_type) out.content_type = content_type;

  const std::string where = "fetch " + request.url + ": ";
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t.truncated)) {
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return make_error(where + "timed out (limits: connect " + std::to_string(request.connect_timeout_ms) +
                          " ms, total " + std::to_string(request.total_timeout_ms) + " ms)");
      case CURLE_COULDNT_RESOLVE_HOST: return make_error(where + "cannot resolve the host name");
      case CURLE_COULDNT_CONNECT: return make_error(where + "cannot connect (" + errbuf + ")");
      case CURLE_TOO_MANY_REDIRECTS:
        return make_error(where + "too many redirects (more than " + std::to_string(request.max_redirects) + ")");
      case CURLE_UNSUPPORTED_PROTOCOL: return make_error(where + "only http and https urls can be fetched");
      default: return make_error(where + (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    }
  }
  if (out.status >= 400) {
    std::string msg = where + "HTTP " + std::to_string(out.status);
    if (const char* phrase = http_reason_phrase(out.status); phrase[0]) msg += std::string(" ") + phrase;
    if (is_textual(out.content_type) && !t.body.empty()) msg += ": " + one_line_excerpt(t.body);
    return make_error(msg);
  }
  out.body = std::move(t.body);
  out.truncated = t.truncated;
  return out;
}

}  // namespace dsa
