// `dsagent render` (cli.md). Not available yet: says so and exits non-zero.
#include <cstdio>

#include "cli/commands.hpp"

namespace dsa::cli {

void add_render_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("render", "(not available yet)");
  cmd->allow_extras();
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "dsagent render: not available in this build yet\n");
    exit_code = 2;
  });
}

}  // namespace dsa::cli
