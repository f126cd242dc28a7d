// libcurl multi-interface driver for http_post (see http_client.hpp). The multi interface lets the
// loop wake every few milliseconds, so idle timeouts and Ctrl-C act promptly even while a server
// is silent (CURLOPT_LOW_SPEED_TIME has one-second granularity and cannot poll a stop flag).
#include "engine/remote/http_client.hpp"

#include <curl/curl.h>

#include <cctype>
#include <chrono>

#include "engine/api/result.hpp"

namespace dsa {

namespace {

using clock = std::chrono::steady_clock;

struct Transfer {
  CURL* easy = nullptr;
  const BodySink* on_body = nullptr;
  HttpOutcome* out = nullptr;
  clock::time_point last_activity = clock::now();
};

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  t->last_activity = clock::now();
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  char* content_type = nullptr;
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &content_type);
  (*t->on_body)(std::string_view(data, size * n), status, content_type ? content_type : "");
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  t->last_activity = clock::now();
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) t->out->headers.clear();  // a new response (after 100 Continue or a redirect)
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
  t->out->headers[name] = std::string(value);
  return size * n;
}

}  // namespace

HttpOutcome http_post(const HttpPost& request, const BodySink& on_body, const std::function<bool()>& should_stop) {
  HttpOutcome out;
  Transfer t;
  t.on_body = &on_body;
  t.out = &out;
  t.easy = curl_easy_init();
  CURLM* multi = curl_multi_init();
  DSA_CHECK(t.easy && multi, "libcurl could not allocate a handle");

  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(t.easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(t.easy, CURLOPT_POST, 1L);
  curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(t.easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(t.easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout_ms));
  curl_easy_setopt(t.easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(t.easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(t.easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(t.easy, CURLOPT_HEADERDATA, &t);
  curl_multi_add_handle(multi, t.easy);

  const auto idle_limit = std::chrono::milliseconds(request.idle_timeout_ms);
  for (;;) {
    int running = 0;
    curl_multi_perform(multi, &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK)
        out.transport_error = errbuf[0] ? errbuf : curl_easy_strerror(msg->data.result);
    }
    if (!running) break;
    if (should_stop()) {
      out.stopped = true;
      break;
    }
    if (request.idle_timeout_ms > 0 && clock::now() - t.last_activity > idle_limit) {
      out.idle_timeout = true;
      out.transport_error = "no data received for " + std::to_string(request.idle_timeout_ms) + " ms";
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 20, nullptr);
  }
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &out.status);

  curl_multi_remove_handle(multi, t.easy);
  curl_easy_cleanup(t.easy);
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  return out;
}

}  // namespace dsa
