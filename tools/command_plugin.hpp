// Command tools: a tool defined by a JSON spec file plus an executable, the simplest way to add a
// tool without writing an MCP server. The spec file:
//   {"name": "word_count", "description": "...", "parameters": {JSON Schema},
//    "command": "./word_count.sh"            (or an argv array: ["python3", "./wc.py"])}
// A relative program path with a '/', and any later argument starting with "./" or "../", are
// relative to the spec file's directory; a bare program name is looked up on PATH. The program runs in the work dir with the arguments object as JSON on stdin
// and its stdout is the observation; a non-zero exit is an error observation carrying its stderr.
// It is killed with its process group at ToolContext::timeout, and counts as a command for approval.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/api/result.hpp"
#include "tools/tool.hpp"

namespace dsa {

// error: "plugins/wc.json: command: expected a string or an array of strings", ...
Result<std::unique_ptr<Tool>> load_command_tool(const std::filesystem::path& spec_file);

// Loads every spec file and adds its tool; fails on the first bad file or a name already taken.
Result<void> add_command_tools(ToolRegistry& registry, const std::vector<std::filesystem::path>& spec_files);

}  // namespace dsa
