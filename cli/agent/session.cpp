// Session wiring and Ctrl-C handling (see session.hpp).
#include "cli/agent/session.hpp"

#include <csignal>
#include <cstdlib>
#include <random>

#include "cli/agent/backend.hpp"
#include "engine/remote/remote_llm.hpp"

namespace dsa::cli {

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
  if (g_interrupted.load()) {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  g_interrupted.store(true);
}

std::string new_session_id() {
  std::random_device rd;
  std::mt19937_64 rng(rd());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

// Values of the API key variables, so the trajectory never holds them.
std::vector<std::string> secrets_from_environment(const AgentOptions& opts) {
  std::vector<std::string> secrets;
  for (const std::string& name : {opts.api_key_env, std::string("DEEPSEEK_API_KEY"), std::string("OPENAI_API_KEY")}) {
    if (name.empty()) continue;
    if (const char* v = std::getenv(name.c_str()); v && *v) secrets.emplace_back(v);
  }
  return secrets;
}

}  // namespace

const std::atomic<bool>& install_interrupt_handler() {
  std::signal(SIGINT, on_sigint);
  return g_interrupted;
}

void clear_interrupt() { g_interrupted.store(false); }

int exit_code_for(FinalStatus status) {
  switch (status) {
    case FinalStatus::answered: return 0;
    case FinalStatus::error: return 1;
    case FinalStatus::max_steps: return 3;
    case FinalStatus::max_resets: return 4;
    case FinalStatus::context_exhausted: return 5;
    case FinalStatus::timeout: return 6;
    case FinalStatus::interrupted: return 130;
  }
  return 1;
}

Result<ContextPolicy> make_context_policy(const AgentOptions& opts, const ModelInfo& info) {
  ContextPolicy p;
  auto strategy = parse_strategy(opts.context_strategy);
  if (!strategy) return make_error("--context-strategy: unknown strategy '" + opts.context_strategy + "'");
  p.strategy = *strategy;
  p.trigger = opts.context_trigger;
  p.window = opts.context_window > 0 ? opts.context_window : info.context_window > 0 ? info.context_window : 131072;
  p.max_resets = opts.max_resets;
  return p;
}

Result<std::unique_ptr<AgentSession>> open_session(const AgentOptions& opts,
                                                   std::function<bool(const std::string&)> ask) {
  auto s = std::make_unique<AgentSession>();
  DSA_TRY(llm, make_llm(opts));
  s->llm = std::move(llm);
  if (!opts.prompts_dir.empty()) {
    std::string err;
    auto set = prompts::PromptSet::with_overrides(opts.prompts_dir, &err);
    if (!set) return make_error("--prompts-dir: " + err);
    s->prompts = std::move(*set);
  }
  DSA_TRY(ctx, make_tool_context(opts));
  ctx.ask = std::move(ask);
  DSA_TRY(warnings, add_selected_tools(s->tools, opts));
  s->warnings = std::move(warnings);
  const ModelInfo info = s->llm->info();
  DSA_TRY(policy, make_context_policy(opts, info));
  const LoopLimits limits{.max_steps = opts.max_steps,
                          .max_total_tokens = opts.max_total_tokens,
                          .time_limit_s = opts.time_limit_s,
                          .max_format_errors = opts.max_format_errors};
  const auto specs = s->tools.specs();
  DSA_TRY(system_prompt, render_system_prompt(s->prompts, specs, ctx));
  s->loop = std::make_unique<AgentLoop>(*s->llm, s->tools, policy, limits, s->prompts, std::move(ctx),
                                        make_gen_options(opts));
  if (!opts.trajectory.empty()) {
    TrajectoryInfo tinfo{.session_id = new_session_id(), .agent_version = "0.1.0", .model_name = info.name,
                         .secrets = secrets_from_environment(opts)};
    DSA_TRY(writer, TrajectoryWriter::create(opts.trajectory, std::move(tinfo)));
    s->trajectory.emplace(std::move(writer));
    s->loop->set_trajectory(&*s->trajectory);
  }
  if (auto* remote = dynamic_cast<RemoteLlm*>(s->llm.get()))
    s->loop->set_warning_source([remote] { return remote->take_warnings(); });
  s->loop->conversation().append_system(system_prompt);
  return s;
}

}  // namespace dsa::cli
