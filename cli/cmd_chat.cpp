// `dsagent chat` (cli.md). Not available yet: says so and exits non-zero.
#include <cstdio>

#include "cli/commands.hpp"

namespace dsa::cli {

void add_chat_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("chat", "(not available yet)");
  cmd->allow_extras();
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "dsagent chat: not available in this build yet\n");
    exit_code = 2;
  });
}

}  // namespace dsa::cli
