// MCP (Model Context Protocol, revision 2025-11-25) servers over stdio as tools. Each server is a
// child process speaking newline-delimited JSON-RPC 2.0 on stdin/stdout (its stderr is its log):
// initialize -> notifications/initialized -> tools/list (following nextCursor) -> tools/call.
// A server's tool `t` of server `s` is exposed to the model as `s__t` (characters outside
// [A-Za-z0-9_-] become '_'), with the server's inputSchema as its parameters.
//
// Failures after start-up are observations, never fatal: an isError result, a JSON-RPC error, a
// call that outlives its timeout (the request is cancelled with notifications/cancelled and the
// server kept), a server that exits (reported with its exit status and the last line of its stderr;
// the next call starts it again), a line on stdout that starts like a message but is not JSON. At
// load, a server that fails is skipped with a warning (see add_mcp_tools).
#pragma once
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/api/result.hpp"
#include "tools/process.hpp"
#include "tools/tool.hpp"

namespace dsa {

// One entry of {"mcpServers": {"name": {"command": "...", "args": [...], "env": {...}}}}, the
// configuration format other agents use.
struct McpServerConfig {
  std::string name;
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the inherited environment
  bool operator==(const McpServerConfig&) const = default;
};

// source names the file in errors: "mcp.json: mcpServers.time.args: expected an array of strings".
Result<std::vector<McpServerConfig>> parse_mcp_config(const json& config, const std::string& source);
Result<std::vector<McpServerConfig>> load_mcp_config(const std::filesystem::path& file);

struct McpToolInfo {
  std::string name;
  std::string description;
  json input_schema;
  bool read_only = false;  // annotations.readOnlyHint: such a tool needs no approval
};

// A connection to one server. Thread-safe: calls are serialised.
class McpClient {
 public:
  // Starts the server's process. Fails only when its command cannot be run.
  static Result<std::shared_ptr<McpClient>> spawn(const McpServerConfig& config);
  // The handshake, then the tool list, each within `timeout` (all pages of the list together).
  // Fails when the server exits, does not answer in time or answers outside the protocol.
  Result<void> open(std::chrono::milliseconds timeout);
  ~McpClient();  // closes the server's stdin, gives it a moment to exit, then kills its group

  const std::string& name() const { return config_.name; }
  const std::vector<McpToolInfo>& tools() const { return tools_; }
  // What open() noticed that did not stop it: a tool list cut short. One line each.
  const std::vector<std::string>& warnings() const { return warnings_; }
  std::string protocol_version() const { return protocol_version_; }
  // tools/call; the text of the result's content items (text joined, other kinds summarised).
  Observation call_tool(const std::string& tool, const json& arguments, std::chrono::milliseconds timeout,
                        const std::atomic<bool>* cancel);

 private:
  explicit McpClient(McpServerConfig config) : config_(std::move(config)) {}
  Result<void> launch();  // the process, with fresh stream state
  Result<void> initialize(std::chrono::milliseconds timeout);
  // tools/list, following nextCursor. A server that pages without end (a cursor it gave before,
  // or more pages than any real server has) keeps the tools listed so far, with a warning.
  Result<void> list_tools(std::chrono::milliseconds timeout);
  // Sends a request and waits for its response until `deadline`, answering the server's own
  // requests meanwhile. Returns the result member; a JSON-RPC error, the deadline (named in the
  // error as `limit`, the time it stands for) or the server's exit is an Error.
  Result<json> request(const std::string& method, const json& params, std::chrono::steady_clock::time_point deadline,
                       std::chrono::milliseconds limit, const std::atomic<bool>* cancel);
  // Writes one message; `during` names it in the error if the server has gone.
  Result<void> send(const json& message, const std::string& during);
  // The next message on stdout, draining stderr meanwhile. Lines that do not start with '{' are
  // skipped (the last is kept in last_noise_); one that does but is not JSON is an error at once.
  Result<json> read_message(std::chrono::steady_clock::time_point deadline, const std::atomic<bool>* cancel);
  // One read of the server's stderr, keeping the tail in stderr_tail_; end of file closes it.
  void read_stderr();
  Error server_gone(const std::string& during);

  McpServerConfig config_;
  std::unique_ptr<ChildProcess> child_;
  std::vector<McpToolInfo> tools_;
  std::vector<std::string> warnings_;
  std::string protocol_version_;
  int64_t next_id_ = 1;
  std::string stdout_buf_;
  std::string last_noise_;  // the last line of stdout in the current request that was no message
  std::string stderr_tail_;
  bool stderr_open_ = true;
  std::mutex mutex_;
};

// Starts every configured server and adds its tools to the registry. What the configuration gets
// wrong fails, as a bad flag does: a command that cannot be run, a tool name already in the
// registry. A server that runs but fails at start-up (it exits, hangs, or answers outside the
// protocol) is reported, not fatal (agent-spec §4): it is skipped with a warning and the others
// are used. A server's own bug that the user cannot fix is a warning too: of its tools with the
// same name (or names that become the same), the first is used. Returns the warnings, one line
// each, naming the server.
Result<std::vector<std::string>> add_mcp_tools(ToolRegistry& registry, const std::vector<McpServerConfig>& servers,
                                               std::chrono::milliseconds startup_timeout = std::chrono::seconds(30));

}  // namespace dsa
