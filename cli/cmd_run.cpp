// `dsagent run TASK | --task-file F` (cli.md): one task, headless. Progress for people on stderr
// and the answer on stdout; with --json, JSON-lines events on stdout ending with a "final" event.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/agent/output.hpp"
#include "cli/agent/session.hpp"
#include "cli/commands.hpp"

namespace dsa::cli {

namespace {

struct RunArgs {
  std::string task;
  std::string task_file;
  AgentOptions agent;
};

Result<std::string> read_task(const RunArgs& args) {
  if (!args.task.empty() && !args.task_file.empty()) return make_error("give either TASK or --task-file, not both");
  if (args.task_file.empty()) {
    if (args.task.empty()) return make_error("no task: give TASK or --task-file F");
    return args.task;
  }
  std::ifstream f(args.task_file, std::ios::binary);
  if (!f) return make_error(args.task_file + ": cannot open task file");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (ss.str().empty()) return make_error(args.task_file + ": the task file is empty");
  return ss.str();
}

// Headless approvals: asks on the controlling terminal when there is one, else refuses.
bool ask_on_tty(const std::string& action) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (!tty) return false;
  std::fprintf(tty, "allow %s? [y/N] ", action.c_str());
  std::fflush(tty);
  char line[64] = {};
  bool yes = std::fgets(line, sizeof line, tty) && (line[0] == 'y' || line[0] == 'Y');
  std::fclose(tty);
  return yes;
}

int run(CLI::App& cmd, RunArgs& args) {
  auto fail = [&args](const std::string& msg) {
    std::fprintf(stderr, "dsagent run: %s\n", msg.c_str());
    // A harness reading --json events gets its final event for a run that could not start too.
    if (args.agent.json_events) {
      RunResult failed;
      failed.status = FinalStatus::error;
      failed.error = msg;
      JsonEventOutput(stdout).on_final(failed);
    }
    return 1;
  };
  if (auto ok = finish_agent_options(cmd, args.agent); !ok) return fail(ok.error().message);
  auto task = read_task(args);
  if (!task) return fail(task.error().message);
  auto session = open_session(args.agent, ask_on_tty);
  if (!session) return fail(session.error().message);
  AgentLoop& loop = *(*session)->loop;

  HumanOutput human(stderr, {.show_thinking = !args.agent.quiet,
                             .show_tool_results = !args.agent.quiet,
                             .stream_content = false,
                             .color = ::isatty(STDERR_FILENO) != 0});
  JsonEventOutput json_out(stdout);
  AgentListener* out = args.agent.json_events ? static_cast<AgentListener*>(&json_out) : &human;
  loop.set_listener(out);
  for (const std::string& w : (*session)->warnings) out->on_warning(w);
  loop.set_interrupt(&install_interrupt_handler());

  const RunResult result = loop.submit(*task);
  if (!args.agent.json_events && result.status == FinalStatus::answered) {
    std::fwrite(result.answer.data(), 1, result.answer.size(), stdout);
    if (result.answer.empty() || result.answer.back() != '\n') std::fputc('\n', stdout);
  }
  std::fflush(stdout);
  return exit_code_for(result.status);
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Run one task headless: think, call tools, answer");
  cmd->add_option("task", args->task, "the task, as text");
  cmd->add_option("--task-file", args->task_file, "read the task from a file");
  add_agent_flags(*cmd, args->agent);
  cmd->footer(
      "Examples:\n"
      "  dsagent run --api https://api.deepseek.com --api-model deepseek-chat \"fix the failing test in tests/\"\n"
      "  dsagent run --api http://localhost:8000 --api-model deepseek-ai/DeepSeek-V3.2 --task-file task.md \\\n"
      "      --workdir repo --json --trajectory run.json\n"
      "The answer goes to stdout, progress to stderr; --json prints one JSON event per line on stdout,\n"
      "the last one {\"type\":\"final\",\"status\",\"answer\",\"steps\",\"usage\",...}; a {\"type\":\"retry\"}\n"
      "event voids the reasoning and content deltas of the step before it (the server failed part way).\n"
      "Exit codes: 0 answered, 1 error (also a set-up error: bad config, backend, tools), 3 max_steps (also\n"
      "--max-total-tokens), 4 max_resets, 5 context_exhausted, 6 timeout, 130 interrupted (Ctrl-C; twice\n"
      "to kill at once). Flags CLI11 cannot parse exit with its usage codes.\n"
      "API keys come from DEEPSEEK_API_KEY, OPENAI_API_KEY or the variable named by --api-key-env.");
  cmd->callback([cmd, args, &exit_code] { exit_code = run(*cmd, *args); });
}

}  // namespace dsa::cli
