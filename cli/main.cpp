// dsagent: a command-line agent runner for DeepSeek-V3.2-class models.
#include <cstdio>

#include "cli/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"dsagent: an agent runner for DeepSeek-V3.2-class models (local sparse-attention engine or an OpenAI-compatible server)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dsagent 0.1.0");
  int exit_code = 0;
  dsa::cli::add_run_command(app, exit_code);
  dsa::cli::add_chat_command(app, exit_code);
  dsa::cli::add_batch_command(app, exit_code);
  dsa::cli::add_index_command(app, exit_code);
  dsa::cli::add_generate_command(app, exit_code);
  dsa::cli::add_tokenize_command(app, exit_code);
  dsa::cli::add_render_command(app, exit_code);
  dsa::cli::add_make_model_command(app, exit_code);
  dsa::cli::add_inspect_command(app, exit_code);
  dsa::cli::add_bench_command(app, exit_code);
  dsa::cli::add_plan_command(app, exit_code);
  dsa::cli::add_rank_worker_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
