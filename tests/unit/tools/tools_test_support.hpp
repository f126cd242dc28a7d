// Helpers for the tools tests: a context on a temporary work dir, calling a tool by name with a
// JSON arguments object, and checking whether a process is still alive.
#pragma once
#include <signal.h>

#include <string>

#include "tests/test_support.hpp"
#include "tools/tool.hpp"

namespace dsa::test {

inline ToolContext context_in(const TempDir& dir) {
  ToolContext ctx;
  ctx.workdir = dir.path();
  return ctx;
}

inline Observation call_tool(ToolRegistry& registry, ToolContext& ctx, const std::string& name, const json& args) {
  return registry.call(ToolCall{"call-1", name, args.dump()}, ctx);
}

// A zombie (killed but not yet reaped by its new parent) counts as gone.
inline bool process_alive(long pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() && stat[close_paren + 2] != 'Z';
}

}  // namespace dsa::test
