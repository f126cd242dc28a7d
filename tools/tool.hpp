// The tool interface: what a tool is (a spec shown to the model plus a call that returns an
// observation), the per-call context (work dir, approval mode, timeout, output cap), and the
// registry the agent loop calls through. A tool call never throws to the loop: every failure the
// model or the world can cause comes back as an is_error observation.
#pragma once
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/types.hpp"

namespace dsa {

struct Observation {
  std::string text;
  bool is_error = false;
  double seconds = 0;      // wall time of the call, set by ToolRegistry::call
  bool truncated = false;  // text was cut head+tail (the marker in the text says how much)
};

enum class ApprovalMode {
  auto_approve,  // everything runs
  ask,           // ToolContext::ask is asked before writes and commands
  read_only,     // writes and commands are refused
};

struct ToolContext {
  std::filesystem::path workdir;  // the jail: file tools resolve paths inside it; shell runs in it
  ApprovalMode approval = ApprovalMode::auto_approve;
  // Asked before writes and commands in ask mode, with a one-line description of the action;
  // absent = deny.
  std::function<bool(const std::string& action)> ask;
  const std::atomic<bool>* cancel = nullptr;  // set by the caller to stop a running command
  std::chrono::seconds timeout{120};          // per call: shell commands, plugins, MCP tools/call
  size_t max_output_bytes = 30000;            // observations longer than this are cut head+tail
  bool sandbox = false;                       // run `shell` inside bubblewrap (see sandbox.hpp)
};

class Tool {
 public:
  virtual ~Tool() = default;
  virtual const ToolSpec& spec() const = 0;
  // args: an object already checked against spec().parameters (required keys, basic types).
  virtual Observation call(const json& args, ToolContext& ctx) = 0;
};

// A tool made of a spec and a function: what the built-in tools are.
std::unique_ptr<Tool> make_tool(ToolSpec spec, std::function<Observation(const json& args, ToolContext& ctx)> fn);

class ToolRegistry {
 public:
  // Tool names are unique; adding a second tool with the same name is a broken invariant
  // (loaders of user-configured tools check has() first and report the clash).
  void add(std::unique_ptr<Tool> tool);
  std::vector<ToolSpec> specs() const;  // in the order added
  bool has(std::string_view name) const;
  // Parses call.arguments (JSON object text; empty text = {}), validates it against the tool's
  // schema, runs the tool, times it and truncates its text to ctx.max_output_bytes. Unknown tool,
  // bad JSON, a missing or mistyped argument, a thrown exception: all become is_error observations.
  Observation call(const ToolCall& call, ToolContext& ctx);

 private:
  std::vector<std::unique_ptr<Tool>> tools_;
};

}  // namespace dsa
