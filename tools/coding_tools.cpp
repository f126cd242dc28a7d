// add_coding_tools: the built-in coding tool set (see coding_tools.hpp).
#include "tools/coding_tools.hpp"

namespace dsa {

void add_coding_tools(ToolRegistry& registry) {
  registry.add(make_shell_tool());
  registry.add(make_read_file_tool());
  registry.add(make_write_file_tool());
  registry.add(make_edit_file_tool());
  registry.add(make_grep_tool());
  registry.add(make_glob_tool());
}

}  // namespace dsa
