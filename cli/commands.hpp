// The dsagent subcommands (cli.md). Each file cmd_<name>.cpp adds one subcommand to the app;
// its callback stores the process exit code in `exit_code`.
#pragma once
#include <CLI/CLI.hpp>

namespace dsa::cli {

void add_run_command(CLI::App& app, int& exit_code);
void add_chat_command(CLI::App& app, int& exit_code);
void add_batch_command(CLI::App& app, int& exit_code);
void add_index_command(CLI::App& app, int& exit_code);
void add_generate_command(CLI::App& app, int& exit_code);
void add_tokenize_command(CLI::App& app, int& exit_code);
void add_render_command(CLI::App& app, int& exit_code);
void add_make_model_command(CLI::App& app, int& exit_code);
void add_inspect_command(CLI::App& app, int& exit_code);
void add_bench_command(CLI::App& app, int& exit_code);
void add_plan_command(CLI::App& app, int& exit_code);
void add_rank_worker_command(CLI::App& app, int& exit_code);

}  // namespace dsa::cli
