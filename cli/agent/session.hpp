// One agent session built from the run/chat flags: backend, tools, prompts, trajectory and the
// loop over them, plus the Ctrl-C flag the loop polls.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/agent/loop.hpp"
#include "cli/agent/options.hpp"
#include "context/trajectory.hpp"
#include "engine/api/llm.hpp"
#include "prompts/render.hpp"
#include "tools/tool.hpp"

namespace dsa::cli {

struct AgentSession {
  std::unique_ptr<Llm> llm;
  ToolRegistry tools;
  prompts::PromptSet prompts;
  std::optional<TrajectoryWriter> trajectory;
  std::unique_ptr<AgentLoop> loop;  // its conversation holds the system prompt
  std::vector<std::string> warnings;  // from the set-up (a skipped MCP server), for the caller to show
};

// Builds everything from the options; `ask` answers approval questions (absent: deny). Errors are
// one line naming the flag or file at fault.
Result<std::unique_ptr<AgentSession>> open_session(const AgentOptions& opts,
                                                   std::function<bool(const std::string&)> ask);

// The context policy the flags describe; the window is --context-window, else what the backend
// reports, else 131072.
Result<ContextPolicy> make_context_policy(const AgentOptions& opts, const ModelInfo& info);

// SIGINT sets the returned flag (the loop then finishes its step and returns `interrupted`);
// a second SIGINT while the flag is still set ends the process as Ctrl-C normally does.
const std::atomic<bool>& install_interrupt_handler();
void clear_interrupt();

// Exit codes of `run` (documented in its --help): 0 answered, 1 error, 3 max_steps,
// 4 max_resets, 5 context_exhausted, 6 timeout, 130 interrupted.
int exit_code_for(FinalStatus status);

}  // namespace dsa::cli
