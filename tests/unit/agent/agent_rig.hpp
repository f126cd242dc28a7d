// A loop over ScriptedLlm and the real coding tools in a temporary work dir, for the loop tests.
#pragma once
#include <memory>

#include "cli/agent/loop.hpp"
#include "tests/scripted_llm.hpp"
#include "tests/test_support.hpp"
#include "tools/coding_tools.hpp"

namespace dsa::test {

inline constexpr const char* kSystem = "You are a test agent.";

inline ToolCall call(std::string name, json args) { return ToolCall{"", std::move(name), args.dump()}; }

// Records events as short strings ("step 1", "tool write_file", "result call_0 ok", ...).
class RecordingListener : public cli::AgentListener {
 public:
  void on_step_start(int step) override { events.push_back("step " + std::to_string(step)); }
  void on_format_error(const std::string&) override { events.push_back("format_error"); }
  void on_tool_call(const ToolCall& c) override { events.push_back("tool " + c.name); }
  void on_tool_result(const ToolCall& c, const Observation& o) override {
    events.push_back("result " + c.id + (o.is_error ? " error" : " ok"));
  }
  void on_context(const ContextRecord& r) override { events.push_back(std::string("context ") + strategy_name(r.applied)); }
  void on_final(const cli::RunResult& r) override { events.push_back(std::string("final ") + cli::final_status_name(r.status)); }
  std::vector<std::string> events;
};

struct Rig {
  TempDir dir{"dsa-agent"};
  ToolRegistry tools;
  prompts::PromptSet prompts;
  ContextPolicy policy;
  cli::LoopLimits limits;
  ToolContext ctx;
  RecordingListener listener;

  Rig() {
    add_coding_tools(tools);
    ctx.workdir = dir.path();
    ctx.timeout = std::chrono::seconds(20);
  }

  std::unique_ptr<cli::AgentLoop> make(Llm& llm, GenOptions gen = {}) {
    auto loop = std::make_unique<cli::AgentLoop>(llm, tools, policy, limits, prompts, ctx, gen);
    loop->conversation().append_system(kSystem);
    loop->set_listener(&listener);
    return loop;
  }

  // Tokens of a conversation holding only the system prompt and `task`, as ScriptedLlm counts them.
  int64_t base_tokens(const std::string& task) const {
    std::vector<Message> m{{.role = Role::system, .content = kSystem}, {.role = Role::user, .content = task}};
    auto specs = tools.specs();
    return ScriptedLlm::estimate_tokens(m, specs, true);
  }
};

}  // namespace dsa::test
