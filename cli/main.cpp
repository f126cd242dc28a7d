// dsagent: a command-line agent runner for DeepSeek-V3.2-class models.
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>

#include "cli/commands.hpp"
#include "cli/fault_handler.hpp"
#include "engine/loader/json_text.hpp"
#include "kernels/cpu/parallel.hpp"

namespace {

// DSA_THREADS sets the CPU threads (kernels/cpu/parallel.hpp), which ignore a value that is not a
// thread count; a user who set one means it, so it is an error here rather than the default.
std::string threads_env_error() {
  const char* env = std::getenv("DSA_THREADS");
  if (!env || !*env) return {};
  int n = 0;
  const char* end = env + std::strlen(env);
  const auto [p, ec] = std::from_chars(env, end, n);
  if (ec == std::errc() && p == end && n >= 1 && n <= dsa::cpu::kMaxThreads) return {};
  return "DSA_THREADS=" + dsa::printable(env, 40) + " is not a thread count from 1 to " +
         std::to_string(dsa::cpu::kMaxThreads);
}

}  // namespace

int main(int argc, char** argv) {
  dsa::cli::install_fault_handler();
  CLI::App app{"dsagent: an agent runner for DeepSeek-V3.2-class models (local sparse-attention engine or an OpenAI-compatible server)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dsagent 0.1.0");
  // A flag error is one line, like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "dsagent: " + dsa::printable(e.what(), 300) + " (--help shows the usage)\n";
  });
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
  if (const std::string bad = threads_env_error(); !bad.empty()) {
    std::fprintf(stderr, "dsagent: %s\n", bad.c_str());
    return 1;
  }
  // A command reports what a user can cause as one line itself; anything that still escapes (memory
  // running out on absurd sizes) ends the same way instead of as an abort.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "dsagent: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsagent: %s\n", dsa::printable(e.what(), 300).c_str());
    return 1;
  }
  return exit_code;
}
