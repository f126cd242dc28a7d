// The MCP stdio client: process, handshake, tool listing and calls (see mcp.hpp).
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <set>
#include <string_view>

#include "tools/mcp.hpp"
#include "tools/mcp_results.hpp"
#include "tools/truncate.hpp"

namespace dsa {

namespace {

using clock = std::chrono::steady_clock;

constexpr const char* kProtocolVersion = "2025-11-25";
// Earlier revisions a server may answer with; tools/list and tools/call are the same in all.
constexpr std::array<std::string_view, 4> kKnownVersions = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"};
constexpr size_t kStderrTailBytes = 2000;  // enough for the last line of a traceback
constexpr auto kShutdownGrace = std::chrono::milliseconds(500);
// More pages of tools/list than any real server sends (at tens of tools a page); past it a server
// is taken to page without end.
constexpr int kMaxToolPages = 100;

std::string seconds_text(std::chrono::milliseconds ms) { return fmt::format("{:g} s", static_cast<double>(ms.count()) / 1000.0); }

}  // namespace

Result<std::shared_ptr<McpClient>> McpClient::spawn(const McpServerConfig& config) {
  std::shared_ptr<McpClient> client(new McpClient(config));
  if (auto ok = client->launch(); !ok) return ok.error();
  return client;
}

Result<void> McpClient::open(std::chrono::milliseconds timeout) {
  if (auto ok = initialize(timeout); !ok) return ok;
  return list_tools(timeout);
}

McpClient::~McpClient() {
  if (!child_) return;
  // The stdio shutdown the spec asks for: close the server's input and let it exit on its own.
  child_->close_stdin();
  auto until = clock::now() + kShutdownGrace;
  while (!child_->poll_exit() && clock::now() < until) usleep(10000);
}

Result<void> McpClient::launch() {
  ProcessSpec spec;
  spec.argv = {config_.command};
  spec.argv.insert(spec.argv.end(), config_.args.begin(), config_.args.end());
  spec.env = config_.env;
  spec.stdin_pipe = true;
  auto child = ChildProcess::spawn(spec);
  if (!child) return child.error();
  child_ = std::move(*child);
  stdout_buf_.clear();
  stderr_tail_.clear();
  stderr_open_ = true;
  return {};
}

Result<void> McpClient::initialize(std::chrono::milliseconds timeout) {
  json params = {{"protocolVersion", kProtocolVersion},
                 {"capabilities", json::object()},
                 {"clientInfo", {{"name", "dsagent"}, {"version", "0.1.0"}}}};
  DSA_TRY(result, request("initialize", params, clock::now() + timeout, timeout, nullptr));
  DSA_TRY(version, parse_initialize_result(result));
  bool known = false;
  for (auto v : kKnownVersions) known = known || v == version;
  if (!known)
    return make_error("initialize answered with protocol version '" + version +
                      "', which dsagent does not speak (it speaks " + kProtocolVersion + " and earlier revisions)");
  protocol_version_ = version;
  return send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, "notifications/initialized");
}

Result<void> McpClient::list_tools(std::chrono::milliseconds timeout) {
  tools_.clear();
  warnings_.clear();
  const auto deadline = clock::now() + timeout;
  std::set<std::string> cursors;
  json params = json::object();
  for (int pages = 1;; ++pages) {
    DSA_TRY(result, request("tools/list", params, deadline, timeout, nullptr));
    DSA_TRY(page, parse_tools_page(result));
    for (McpToolInfo& info : page.tools) tools_.push_back(std::move(info));
    if (!page.next_cursor) return {};
    if (!cursors.insert(*page.next_cursor).second) {
      warnings_.push_back(
          fmt::format("tools/list gave the cursor '{}' a second time; using the tools listed until then ({})",
                      one_line_excerpt(*page.next_cursor, 60), tools_.size()));
      return {};
    }
    if (pages == kMaxToolPages) {
      warnings_.push_back(fmt::format(
          "tools/list still had more after {} pages; using the tools listed until then ({})", pages, tools_.size()));
      return {};
    }
    params = {{"cursor", *page.next_cursor}};
  }
}

Observation McpClient::call_tool(const std::string& tool, const json& arguments, std::chrono::milliseconds timeout,
                                 const std::atomic<bool>* cancel) {
  std::lock_guard lock(mutex_);
  std::string what = "MCP " + config_.name + "/" + tool;
  if (!child_ || child_->poll_exit()) {
    // The server exited after an earlier call: start it again (tools are assumed unchanged).
    Result<void> ok = launch();
    if (ok) ok = initialize(timeout);
    if (!ok) return {what + ": restarting the server failed: " + ok.error().message, true};
  }
  auto result =
      request("tools/call", {{"name", tool}, {"arguments", arguments}}, clock::now() + timeout, timeout, cancel);
  if (!result) return {what + ": " + result.error().message, true};
  auto observation = parse_call_result(*result);
  if (!observation) return {what + ": " + observation.error().message, true};
  return *observation;
}

Result<void> McpClient::send(const json& message, const std::string& during) {
  // dump() escapes control characters, so the message is one line as the stdio transport requires.
  std::string line = message.dump() + "\n";
  if (!child_->write_stdin(line)) return server_gone(during);
  return {};
}

Result<json> McpClient::request(const std::string& method, const json& params, clock::time_point deadline,
                                std::chrono::milliseconds limit, const std::atomic<bool>* cancel) {
  int64_t id = next_id_++;
  auto ok = send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}, method);
  if (!ok) return ok.error();
  last_noise_.clear();
  for (;;) {
    auto msg = read_message(deadline, cancel);
    if (!msg) {
      if (child_->poll_exit()) return server_gone(method);
      // Timed out, cancelled or a broken message: tell the server to stop working on the request;
      // a late answer is skipped.
      const std::string& why = msg.error().message;
      (void)send(
          {{"jsonrpc", "2.0"}, {"method", "notifications/cancelled"}, {"params", {{"requestId", id}, {"reason", why}}}},
          "notifications/cancelled");
      if (why == "cancelled") return make_error(method + " cancelled");
      if (why != "timed out") return make_error(method + ": " + why);
      std::string error = method + " timed out after " + seconds_text(limit);
      // A server that writes its answers in a form dsagent does not read shows why here.
      if (!last_noise_.empty())
        error += " (the server wrote a line that is not JSON-RPC: " + one_line_excerpt(last_noise_) + ")";
      return make_error(error);
    }
    const json& m = *msg;
    bool has_method = m.contains("method");
    if (has_method && m.contains("id")) {
      // A request from the server. ping must be answered; dsagent offers no other client features.
      json reply = {{"jsonrpc", "2.0"}, {"id", m["id"]}};
      if (m["method"] == "ping") reply["result"] = json::object();
      else reply["error"] = {{"code", -32601}, {"message", "method not supported by dsagent"}};
      if (auto sent = send(reply, "a reply to " + m["method"].dump()); !sent) return sent.error();
      continue;
    }
    if (has_method || !m.contains("id") || m["id"] != id) continue;  // notifications, stale answers
    if (m.contains("error")) {
      return make_error(method + " failed: " + describe_rpc_error(m["error"]));
    }
    if (!m.contains("result") || !m["result"].is_object())
      return make_error(method + ": the response has no result object");
    return m["result"];
  }
}

Result<json> McpClient::read_message(clock::time_point deadline, const std::atomic<bool>* cancel) {
  char buf[65536];
  for (;;) {
    for (size_t nl; (nl = stdout_buf_.find('\n')) != std::string::npos;) {
      std::string line = stdout_buf_.substr(0, nl);
      stdout_buf_.erase(0, nl + 1);
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string::npos) continue;
      // A message is a JSON object on one line. Other lines are noise some servers print to stdout
      // (a banner, a log line); a line that starts like an object but does not parse is a broken
      // message, most likely the awaited answer, so waiting on would only end in a timeout.
      if (line[start] != '{') {
        last_noise_ = std::move(line);
        continue;
      }
      json msg = json::parse(line, nullptr, false);
      if (msg.is_discarded())
        return make_error("the server wrote a line that is not valid JSON: " + one_line_excerpt(line));
      return msg;
    }
    auto now = clock::now();
    if (now >= deadline) return make_error("timed out");
    if (cancel && cancel->load()) return make_error("cancelled");
    // A server may close its stderr early; a negative fd makes poll skip it.
    pollfd fds[2] = {{child_->stdout_fd(), POLLIN, 0}, {stderr_open_ ? child_->stderr_fd() : -1, POLLIN, 0}};
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    int n = poll(fds, 2, static_cast<int>(std::min<int64_t>(wait, 100)));
    if (n < 0 && errno != EINTR) return make_error(std::string("poll failed"));
    if (fds[1].revents) read_stderr();
    if (fds[0].revents) {
      ssize_t r = ::read(fds[0].fd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        child_->kill_group();  // stdout closed: whatever is left of the server is of no use
        child_->wait();
        return make_error("the server closed its stdout");
      }
      if (r > 0) stdout_buf_.append(buf, static_cast<size_t>(r));
    }
  }
}

void McpClient::read_stderr() {
  char buf[16384];
  ssize_t r = ::read(child_->stderr_fd(), buf, sizeof buf);
  if (r > 0) {
    stderr_tail_.append(buf, static_cast<size_t>(r));
    if (stderr_tail_.size() > kStderrTailBytes) stderr_tail_.erase(0, stderr_tail_.size() - kStderrTailBytes);
  } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
    stderr_open_ = false;
  }
}

Error McpClient::server_gone(const std::string& during) {
  ExitStatus status = child_->poll_exit() ? child_->wait() : (child_->kill_group(), child_->wait());
  // What the server wrote to stderr before it went and has not been read yet (it may have exited
  // before the first read); a descendant holding the pipe open gets half a second at most.
  for (auto until = clock::now() + std::chrono::milliseconds(500); stderr_open_ && clock::now() < until;) {
    pollfd fd{child_->stderr_fd(), POLLIN, 0};
    if (poll(&fd, 1, 100) > 0 && fd.revents) read_stderr();
  }
  // Its last line says why it went (a traceback ends with the exception) and keeps the error one
  // line.
  std::string_view tail = stderr_tail_;
  while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back()))) tail.remove_suffix(1);
  if (auto nl = tail.rfind('\n'); nl != std::string_view::npos) tail.remove_prefix(nl + 1);
  return make_error("the server exited (" + status.describe() + ") during " + during +
                    (tail.empty() ? "" : "; its stderr ends with: " + one_line_excerpt(tail)));
}

}  // namespace dsa
