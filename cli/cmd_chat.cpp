// `dsagent chat` (cli.md): the interactive terminal coding agent on the same loop as `run`. Reads
// one message per line from stdin (a terminal or a pipe), streams thinking and answers to stdout,
// asks approvals on the terminal, and understands /reset, /save FILE, /exit and /help.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli/agent/output.hpp"
#include "cli/agent/session.hpp"
#include "cli/commands.hpp"

namespace dsa::cli {

namespace {

struct ChatArgs {
  std::string resume;
  AgentOptions agent;
};

constexpr const char* kHelp =
    "  /reset       start a new conversation\n"
    "  /save FILE   save the conversation (resume it with --resume FILE)\n"
    "  /exit        leave (also Ctrl-D)\n"
    "  Ctrl-C       stop the running step; twice to quit\n";

// Approvals read the answer from stdin, like the chat itself, so a pipe can answer them too.
bool ask_on_stdin(const std::string& action) {
  std::fprintf(stderr, "allow %s? [y/N] ", action.c_str());
  std::fflush(stderr);
  std::string line;
  if (!std::getline(std::cin, line)) return false;
  return !line.empty() && (line[0] == 'y' || line[0] == 'Y');
}

int chat(CLI::App& cmd, ChatArgs& args) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "dsagent chat: %s\n", msg.c_str());
    return 1;
  };
  if (auto ok = finish_agent_options(cmd, args.agent); !ok) return fail(ok.error().message);
  auto opened = open_session(args.agent, ask_on_stdin);
  if (!opened) return fail(opened.error().message);
  AgentSession& session = **opened;
  AgentLoop& loop = *session.loop;
  const std::string system_prompt = loop.conversation().messages().front().content;
  if (!args.resume.empty()) {
    auto loaded = Conversation::load(args.resume);
    if (!loaded) return fail(loaded.error().message);
    loop.conversation() = std::move(*loaded);
  }

  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  HumanOutput human(stdout, {.show_thinking = !args.agent.quiet,
                             .show_tool_results = !args.agent.quiet,
                             .stream_content = true,
                             .color = ::isatty(STDOUT_FILENO) != 0});
  JsonEventOutput json_out(stdout);
  AgentListener* out = args.agent.json_events ? static_cast<AgentListener*>(&json_out) : &human;
  loop.set_listener(out);
  for (const std::string& w : session.warnings) out->on_warning(w);
  loop.set_interrupt(&install_interrupt_handler());

  if (interactive)
    std::fprintf(stderr, "dsagent chat (%s) in %s. /help for commands.\n", session.llm->info().name.c_str(),
                 args.agent.workdir.empty() ? "." : args.agent.workdir.c_str());
  std::string line;
  int last_code = 0;
  for (;;) {
    if (interactive) {
      std::fputs("> ", stderr);
      std::fflush(stderr);
    }
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/help") {
      std::fputs(kHelp, stderr);
      continue;
    }
    if (line == "/reset") {
      loop.reset(system_prompt);
      std::fputs("(new conversation)\n", stderr);
      continue;
    }
    if (line.starts_with("/save")) {
      std::string file = line.size() > 6 ? line.substr(6) : "";
      if (file.empty()) {
        std::fputs("usage: /save FILE\n", stderr);
        continue;
      }
      auto saved = loop.conversation().save(file);
      if (!saved) std::fprintf(stderr, "dsagent chat: %s\n", saved.error().message.c_str());
      else std::fprintf(stderr, "(saved to %s)\n", file.c_str());
      continue;
    }
    if (line.starts_with("/")) {
      std::fprintf(stderr, "unknown command %s\n%s", line.c_str(), kHelp);
      continue;
    }
    clear_interrupt();
    const RunResult result = loop.submit(line);
    last_code = exit_code_for(result.status);
    std::fflush(stdout);
  }
  return last_code == 130 ? 0 : last_code;
}

}  // namespace

void add_chat_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ChatArgs>();
  auto* cmd = app.add_subcommand("chat", "Interactive terminal coding agent");
  cmd->add_option("--resume", args->resume, "continue a conversation saved with /save");
  add_agent_flags(*cmd, args->agent);
  args->agent.approval = "ask";
  cmd->footer(std::string("Examples:\n"
                          "  dsagent chat --api https://api.deepseek.com --api-model deepseek-chat\n"
                          "  dsagent chat --api http://localhost:8000 --api-model m --approval auto --resume s.json\n"
                          "One message per line on stdin. Commands:\n") +
              kHelp +
              "Approvals default to ask: each write or command is confirmed on the next input line.\n"
              "The exit code is the last message's (see `dsagent run --help`), 0 after an interrupt.");
  cmd->callback([cmd, args, &exit_code] { exit_code = chat(*cmd, *args); });
}

}  // namespace dsa::cli
