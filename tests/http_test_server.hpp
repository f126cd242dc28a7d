// A loopback HTTP/1.1 server for tests: scripted responses, recorded requests.
//
// Binds 127.0.0.1 on a free port, serves each connection on its own thread, and answers the n-th
// request to arrive with the n-th scripted Response (requests past the script get a 500 saying so).
// Every request is recorded (method, path, lower-cased headers, body). Each response closes its
// connection (`Connection: close`); bodies are sent with chunked transfer encoding, one HTTP chunk
// per scripted Chunk, each after its delay, so a client sees data arrive piece by piece. A Response
// with `cut` set closes the socket after its chunks without the terminating chunk, as a server or
// proxy that dies mid-stream would. Delays are slept in small slices so the destructor, which stops
// and joins the thread, never waits long.
//
//   dsa::test::HttpTestServer server({
//       HttpTestServer::Response{.status = 429, .headers = {{"Retry-After", "0"}}, .chunks = {{"busy"}}},
//       HttpTestServer::sse({"data: {...}\n\n", "data: [DONE]\n\n"}),
//   });
//   std::string url = server.url();           // "http://127.0.0.1:PORT"
//   ... client calls ...
//   auto reqs = server.requests();            // what arrived, in order
//
// Not a general web server: no keep-alive, no TLS, no pipelining; requests need Content-Length
// (or no body). Headers of a request are bounded to 64 KiB, bodies to 64 MiB.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dsa::test {

class HttpTestServer {
 public:
  struct Chunk {
    std::string data;
    int delay_ms = 0;  // waited before this chunk is sent
  };

  struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // Content-Type defaults to text/plain
    std::vector<Chunk> chunks;
    bool cut = false;  // close the connection after the chunks, leaving the body unfinished
  };

  struct Request {
    std::string method;
    std::string path;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;

    std::string header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? std::string() : it->second;
    }
  };

  // A 200 text/event-stream response, one chunk per event string (each a complete "data: ...\n\n").
  static Response sse(std::vector<std::string> events, int delay_ms = 0) {
    Response r;
    r.headers = {{"Content-Type", "text/event-stream"}};
    for (auto& e : events) r.chunks.push_back(Chunk{std::move(e), delay_ms});
    return r;
  }

  // A response with a JSON body sent in one chunk.
  static Response json_body(int status, std::string body) {
    Response r;
    r.status = status;
    r.headers = {{"Content-Type", "application/json"}};
    r.chunks.push_back(Chunk{std::move(body), 0});
    return r;
  }

  explicit HttpTestServer(std::vector<Response> script) : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) throw std::runtime_error("http test server: socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("http test server: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }

  ~HttpTestServer() {
    stop_ = true;
    thread_.join();
    for (auto& t : connections_) t.join();
    ::close(listen_fd_);
  }

  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<Request> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  static constexpr size_t kMaxHeaderBytes = 64 << 10;
  static constexpr size_t kMaxBodyBytes = 64 << 20;
  static constexpr int kSliceMs = 10;
  static constexpr int kReadTimeoutMs = 10000;  // a client that sends nothing for this long is dropped

  void serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, kSliceMs) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      // A client that gives up on a slow response and retries must not wait behind it.
      connections_.emplace_back([this, fd] {
        handle(fd);
        ::close(fd);
      });
    }
  }

  // Sleeps up to ms in slices; false when the server is stopping.
  bool sleep_ms(int ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      if (stop_) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, kSliceMs)));
    }
    return !stop_;
  }

  // Appends bytes from fd to buf; false on close, error, timeout or stop.
  bool read_some(int fd, std::string& buf) {
    for (int waited = 0; waited < kReadTimeoutMs && !stop_; waited += kSliceMs) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, kSliceMs);
      if (r == 0) continue;
      if (r < 0) return false;
      char tmp[16384];
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
      return true;
    }
    return false;
  }

  static bool send_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  static std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  static std::string trim(const std::string& s) {
    size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  }

  void handle(int fd) {
    std::string buf;
    size_t head_end;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > kMaxHeaderBytes || !read_some(fd, buf)) return;
    }
    Request req;
    size_t line_end = buf.find("\r\n");
    std::string request_line = buf.substr(0, line_end);
    size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    if (sp1 == std::string::npos || sp2 <= sp1) return;
    req.method = request_line.substr(0, sp1);
    req.path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end + 2;
    while (pos < head_end) {
      size_t e = buf.find("\r\n", pos);
      std::string line = buf.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) req.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
      pos = e + 2;
    }
    size_t body_len = 0;
    if (auto cl = req.header("content-length"); !cl.empty()) body_len = std::stoull(cl);
    if (body_len > kMaxBodyBytes) return;
    if (lower(req.header("expect")) == "100-continue" && !send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return;
    std::string rest = buf.substr(head_end + 4);
    while (rest.size() < body_len) {
      if (!read_some(fd, rest)) return;
    }
    req.body = rest.substr(0, body_len);

    Response resp;
    {
      std::lock_guard<std::mutex> lock(mu_);
      size_t index = requests_.size();
      requests_.push_back(req);
      if (index < script_.size()) {
        resp = script_[index];
      } else {
        resp.status = 500;
        resp.chunks = {{"request " + std::to_string(index + 1) + " is past the end of the test script"}};
      }
    }
    respond(fd, resp);
  }

  void respond(int fd, const Response& resp) {
    std::string head = "HTTP/1.1 " + std::to_string(resp.status) + " Scripted\r\n";
    bool has_type = false;
    for (const auto& [k, v] : resp.headers) {
      head += k + ": " + v + "\r\n";
      has_type = has_type || lower(k) == "content-type";
    }
    if (!has_type) head += "Content-Type: text/plain\r\n";
    head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if (!send_all(fd, head)) return;
    for (const auto& c : resp.chunks) {
      if (c.delay_ms > 0 && !sleep_ms(c.delay_ms)) return;
      if (c.data.empty()) continue;  // an empty HTTP chunk would end the body
      char size_line[32];
      std::snprintf(size_line, sizeof size_line, "%zx\r\n", c.data.size());
      if (!send_all(fd, size_line + c.data + "\r\n")) return;
    }
    if (!resp.cut) send_all(fd, "0\r\n\r\n");
  }

  std::vector<Response> script_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Request> requests_;
  std::thread thread_;                    // accepts
  std::vector<std::thread> connections_;  // one per accepted connection; touched by thread_ only until joined
};

}  // namespace dsa::test
