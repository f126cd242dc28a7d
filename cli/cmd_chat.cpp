// `dsagent chat` (cli.md): the interactive terminal coding agent on the same loop as `run`. Reads
// one message per line from stdin (a terminal or a pipe), streams thinking and answers to stdout,
// asks approvals on the terminal, and understands /reset, /save FILE, /exit and /help.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

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

std::string trimmed(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t"), end = s.find_last_not_of(" \t");
  return begin == std::string_view::npos ? std::string() : std::string(s.substr(begin, end - begin + 1));
}

// The chat's input lines. Approvals read their answer from the same stdin, so a pipe can answer
// them too; a line that is not an answer (a message, a /command) refuses the action and is kept
// as the next input, not lost.
class ChatInput {
 public:
  bool next(std::string& line) {
    if (kept_) {
      line = std::move(*kept_);
      kept_.reset();
      return true;
    }
    if (!std::getline(std::cin, line)) return false;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // a line typed on Windows
    return true;
  }

  // The line an approval kept, shown after the prompt it answers.
  const std::optional<std::string>& kept() const { return kept_; }

  // y or yes allows, n, no or an empty line refuses (any case, spaces ignored).
  bool ask(const std::string& action) {
    std::fprintf(stderr, "allow %s? [y/N] ", action.c_str());
    if (kept_) {  // a line already waits as the next input: not read as this answer
      std::fputs("refused (your next input is waiting)\n", stderr);
      return false;
    }
    std::fflush(stderr);
    std::string line;
    if (!next(line)) return false;
    std::string answer = trimmed(line);
    for (char& c : answer) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (answer == "y" || answer == "yes") return true;
    if (answer.empty() || answer == "n" || answer == "no") return false;
    std::fputs("(not an answer: refused; the line is kept as your next input)\n", stderr);
    kept_ = std::move(line);
    return false;
  }

 private:
  std::optional<std::string> kept_;
};

// Whether a and b name one file (b may not exist yet); false when either is empty.
bool same_file(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  std::error_code ec;
  const auto ca = std::filesystem::weakly_canonical(a, ec), cb = std::filesystem::weakly_canonical(b, ec);
  return !ec && ca == cb;
}

int chat(CLI::App& cmd, ChatArgs& args) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "dsagent chat: %s\n", msg.c_str());
    return 1;
  };
  if (auto ok = finish_agent_options(cmd, args.agent); !ok) return fail(ok.error().message);
  // The conversation to resume is read before the session opens its trajectory file, which that
  // truncates: a resume that fails, or names the same file, loses nothing.
  std::optional<Conversation> resumed;
  if (!args.resume.empty()) {
    if (same_file(args.resume, args.agent.trajectory))
      return fail("--trajectory " + args.agent.trajectory + " would overwrite the conversation to resume");
    auto loaded = Conversation::load(args.resume);
    if (!loaded) return fail(loaded.error().message);
    resumed = std::move(*loaded);
  }
  ChatInput input;
  auto opened = open_session(args.agent, [&input](const std::string& action) { return input.ask(action); });
  if (!opened) return fail(opened.error().message);
  AgentSession& session = **opened;
  AgentLoop& loop = *session.loop;
  const std::string system_prompt = loop.conversation().messages().front().content;
  if (resumed) {
    // The session's system prompt (this run's tools, work dir and approval mode) in place of the
    // saved one.
    Conversation conv;
    conv.append_system(system_prompt);
    const size_t first = !resumed->empty() && resumed->messages()[0].role == Role::system ? 1 : 0;
    for (size_t i = first; i < resumed->size(); ++i) conv.append(resumed->messages()[i], resumed->origin(i));
    loop.conversation() = std::move(conv);
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
      if (input.kept()) std::fprintf(stderr, "%s\n", input.kept()->c_str());
      std::fflush(stderr);
    }
    if (!input.next(line)) break;
    if (line.empty()) continue;
    if (const std::string text = trimmed(line); text.starts_with("/")) {
      // A command: its name, then (for /save) one argument, spaces around both ignored.
      const std::string name = text.substr(0, text.find(' '));
      const std::string arg = text.size() > name.size() ? trimmed(text.substr(name.size())) : "";
      if (name == "/exit" || name == "/quit") break;
      if (name == "/help") {
        std::fputs(kHelp, stderr);
      } else if (name == "/reset") {
        loop.reset(system_prompt);
        std::fputs("(new conversation)\n", stderr);
      } else if (name == "/save") {
        if (arg.empty()) {
          std::fputs("usage: /save FILE\n", stderr);
        } else if (same_file(arg, args.agent.trajectory)) {
          std::fprintf(stderr, "dsagent chat: %s is the --trajectory file; save to another\n", arg.c_str());
        } else if (auto saved = loop.conversation().save(arg); !saved) {
          std::fprintf(stderr, "dsagent chat: %s\n", saved.error().message.c_str());
          last_code = 1;
        } else {
          std::fprintf(stderr, "(saved to %s)\n", arg.c_str());
        }
      } else {
        std::fprintf(stderr, "unknown command %s\n%s", name.c_str(), kHelp);
      }
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
              "Approvals default to ask: each write or command is confirmed on the next input line (y or n;\n"
              "any other line refuses it and is kept as the next input).\n"
              "The exit code is the last message's (see `dsagent run --help`), 0 after an interrupt.");
  cmd->callback([cmd, args, &exit_code] { exit_code = chat(*cmd, *args); });
}

}  // namespace dsa::cli
