// The built-in coding tools: shell, read_file, write_file, edit_file, grep and glob. All of them
// work inside ToolContext::workdir (paths are jailed there, see policy.hpp) and ask the approval
// policy before writing or running anything.
#pragma once
#include <memory>

#include "tools/tool.hpp"

namespace dsa {

// Adds shell, read_file, write_file, edit_file, grep and glob, in that order.
void add_coding_tools(ToolRegistry& registry);

// The tools one by one (shell_tool.cpp, file_tools.cpp, search_tools.cpp).
std::unique_ptr<Tool> make_shell_tool();
std::unique_ptr<Tool> make_read_file_tool();
std::unique_ptr<Tool> make_write_file_tool();
std::unique_ptr<Tool> make_edit_file_tool();
std::unique_ptr<Tool> make_grep_tool();
std::unique_ptr<Tool> make_glob_tool();

}  // namespace dsa
