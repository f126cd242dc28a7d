// One streaming HTTP POST through libcurl, with an idle-read timeout and a stop poll. Knows nothing
// about chat completions; RemoteLlm decides what a status or a cut transfer means.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace dsa {

struct HttpPost {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  int connect_timeout_ms = 0;
  int idle_timeout_ms = 0;  // no byte (header or body) for this long ends the transfer
};

struct HttpOutcome {
  long status = 0;                             // 0 when no response arrived
  std::map<std::string, std::string> headers;  // of the final response, names lower-cased
  std::string transport_error;                 // empty when the transfer completed
  bool idle_timeout = false;
  bool stopped = false;                        // should_stop returned true
};

// Called with each piece of the response body as it arrives, with the status and Content-Type.
using BodySink = std::function<void(std::string_view bytes, long status, std::string_view content_type)>;

// Performs the POST; should_stop is polled about every 20 ms and after each received piece.
HttpOutcome http_post(const HttpPost& request, const BodySink& on_body, const std::function<bool()>& should_stop);

}  // namespace dsa
