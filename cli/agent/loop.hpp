// The agent loop: one submission (a user message) runs steps
//   context check -> model call -> parse -> tool calls -> observations appended
// until the model answers (a turn without tool calls) or a limit ends it. Clients (`run`, `chat`,
// `batch`, tests) submit messages and listen to events; the loop owns no terminal.
//
// Rules it keeps:
//   * Tool results are tool messages; reasoning is kept across them and dropped at the next user
//     message (Conversation::messages_for_model).
//   * Tool-call ids are renumbered "call_<n>" with n counting over the whole conversation (the
//     local encoder numbers calls per turn), so every tool result names exactly one call.
//   * A malformed turn (AssistantTurn::format_error, an empty turn, or a turn cut at max_tokens
//     with no tool call) is told back to the model with format_error.txt and runs none of its
//     calls: each call gets that text as its result, or, without calls, it goes as a user note.
//     `max_format_errors` of them in a row end the submission with `error`.
//   * Tool failures are observations (ToolRegistry::call never throws).
//   * The context policy is checked before every model call, and applied again when the backend
//     answers "context length exceeded"; every application goes to the listener and trajectory.
//   * The trajectory, when set, is rewritten after every step.
//   * The interrupt flag (Ctrl-C) is polled while generating (StreamSink::should_stop), by running
//     commands (ToolContext::cancel) and between tool calls; the step is finished cleanly (calls not
//     run get a "not run" result) and the submission returns `interrupted`.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cli/agent/events.hpp"
#include "context/budget.hpp"
#include "context/conversation.hpp"
#include "context/trajectory.hpp"
#include "engine/api/llm.hpp"
#include "prompts/render.hpp"
#include "tools/tool.hpp"

namespace dsa::cli {

struct LoopLimits {
  int max_steps = 200;              // model turns per submission
  int64_t max_total_tokens = 0;     // prompt + completion tokens per submission; 0 = no limit (ends as max_steps)
  double time_limit_s = 0;          // wall time per submission; 0 = no limit (ends as timeout)
  int max_format_errors = 3;        // consecutive malformed turns (ends as error)
};

class AgentLoop {
 public:
  // `llm`, `tools` and `prompts` must outlive the loop.
  AgentLoop(Llm& llm, ToolRegistry& tools, ContextPolicy policy, LoopLimits limits, const prompts::PromptSet& prompts,
            ToolContext tool_context, GenOptions gen);
  AgentLoop(const AgentLoop&) = delete;
  AgentLoop& operator=(const AgentLoop&) = delete;

  void set_listener(AgentListener* listener) { listener_ = listener ? listener : &null_listener_; }
  // Written after every step from now on; null = none. Must outlive the loop.
  void set_trajectory(TrajectoryWriter* trajectory) { trajectory_ = trajectory; }
  // Set asynchronously (a SIGINT handler) to stop the current submission; the loop only reads it.
  void set_interrupt(const std::atomic<bool>* flag);
  // Asked after every model call for the backend's warnings (RemoteLlm::take_warnings: retries,
  // skipped chunks), which go to the listener.
  void set_warning_source(std::function<std::vector<std::string>()> source) { warning_source_ = std::move(source); }

  // The conversation: the client adds the system prompt before the first submission, replaces it
  // to resume a saved session, or clears it to start over.
  Conversation& conversation() { return conv_; }
  const Conversation& conversation() const { return conv_; }
  // Starts over from a system prompt (chat's /reset): a fresh conversation, recorded in the trajectory.
  void reset(const std::string& system_prompt);
  std::vector<ToolSpec> tool_specs() const { return specs_; }

  // Appends `user_message` and runs until an answer or a limit. Also writes the final state to
  // the trajectory and tells the listener.
  RunResult submit(const std::string& user_message);

 private:
  class Sink;
  enum class StepEnd { next, done };

  StepEnd step(RunResult& result, ContextManager& context, std::chrono::steady_clock::time_point deadline);
  bool interrupted() const { return interrupt_ && interrupt_->load(); }
  std::string time_limit_text() const;  // "time limit of 3 s"
  void renumber(AssistantTurn& turn);
  std::string format_error_text(const std::string& error) const;
  void context_applied(const ContextRecord& record, RunResult& result);
  void trajectory_result(const Result<void>& r);
  template <class T>
  void trajectory_result(const Result<T>& r) {
    if (!r.ok()) warn(r.error().message);
  }
  void warn(const std::string& message);
  RunResult finish(RunResult result, FinalStatus status, std::string error = {});

  Llm& llm_;
  ToolRegistry& tools_;
  std::vector<ToolSpec> specs_;
  ContextPolicy policy_;
  LoopLimits limits_;
  const prompts::PromptSet& prompts_;
  ToolContext tool_ctx_;
  GenOptions gen_;
  Conversation conv_;
  bool trajectory_started_ = false;  // the system prompt is in the trajectory
  AgentListener* listener_ = nullptr;
  AgentListener null_listener_;
  TrajectoryWriter* trajectory_ = nullptr;
  const std::atomic<bool>* interrupt_ = nullptr;
  std::function<std::vector<std::string>()> warning_source_;
  int64_t next_call_id_ = 0;
  int format_errors_in_row_ = 0;
};

// The coding agent's system prompt (system_coding.txt) for these tools and this context.
Result<std::string> render_system_prompt(const prompts::PromptSet& prompts, std::span<const ToolSpec> tools,
                                         const ToolContext& ctx);

}  // namespace dsa::cli
