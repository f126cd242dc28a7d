// The agent loop (see loop.hpp).
#include "cli/agent/loop.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "engine/tokenizer/utf8.hpp"

namespace dsa::cli {

using Clock = std::chrono::steady_clock;

const char* final_status_name(FinalStatus s) {
  switch (s) {
    case FinalStatus::answered: return "answered";
    case FinalStatus::max_steps: return "max_steps";
    case FinalStatus::max_resets: return "max_resets";
    case FinalStatus::context_exhausted: return "context_exhausted";
    case FinalStatus::timeout: return "timeout";
    case FinalStatus::error: return "error";
    case FinalStatus::interrupted: return "interrupted";
  }
  return "?";
}

json to_json(const RunResult& r) {
  json j{{"status", final_status_name(r.status)}, {"answer", r.answer},       {"steps", r.steps},
         {"tool_calls", r.tool_calls},            {"resets", r.resets},       {"usage", to_json(r.usage)},
         {"seconds", r.seconds}};
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

namespace {

void add_usage(Usage& total, const Usage& u) {
  total.prompt_tokens += u.prompt_tokens;
  total.completion_tokens += u.completion_tokens;
  total.cached_tokens += u.cached_tokens;
  total.reasoning_tokens += u.reasoning_tokens;
}

// n of an id "call_<n>", or -1.
int64_t call_number(const std::string& id) {
  if (!id.starts_with("call_")) return -1;
  int64_t n = -1;
  auto [p, ec] = std::from_chars(id.data() + 5, id.data() + id.size(), n);
  return ec == std::errc() && p == id.data() + id.size() ? n : -1;
}

}  // namespace

// Forwards the model's stream to the listener and asks generation to stop on Ctrl-C or past the
// deadline.
class AgentLoop::Sink : public StreamSink {
 public:
  Sink(AgentListener& listener, const std::atomic<bool>* interrupt, Clock::time_point deadline)
      : listener_(listener), interrupt_(interrupt), deadline_(deadline) {}
  void on_reasoning(std::string_view d) override { listener_.on_reasoning(d); }
  void on_content(std::string_view d) override { listener_.on_content(d); }
  void on_retry(std::string_view reason) override { listener_.on_retry(std::string(reason)); }
  bool should_stop() override {
    return (interrupt_ && interrupt_->load()) || Clock::now() >= deadline_;
  }

 private:
  AgentListener& listener_;
  const std::atomic<bool>* interrupt_;
  Clock::time_point deadline_;
};

AgentLoop::AgentLoop(Llm& llm, ToolRegistry& tools, ContextPolicy policy, LoopLimits limits,
                     const prompts::PromptSet& prompts, ToolContext tool_context, GenOptions gen)
    : llm_(llm),
      tools_(tools),
      specs_(tools.specs()),
      policy_(policy),
      limits_(limits),
      prompts_(prompts),
      tool_ctx_(std::move(tool_context)),
      gen_(std::move(gen)),
      listener_(&null_listener_) {}

void AgentLoop::set_interrupt(const std::atomic<bool>* flag) {
  interrupt_ = flag;
  tool_ctx_.cancel = flag;
}

void AgentLoop::reset(const std::string& system_prompt) {
  conv_ = Conversation();
  conv_.append_system(system_prompt);
  if (trajectory_) trajectory_result(trajectory_->add_system(system_prompt));
  trajectory_started_ = true;
}

void AgentLoop::warn(const std::string& message) { listener_->on_warning(message); }

void AgentLoop::trajectory_result(const Result<void>& r) {
  if (!r.ok()) warn(r.error().message);
}

void AgentLoop::renumber(AssistantTurn& turn) {
  for (auto& call : turn.tool_calls) call.id = "call_" + std::to_string(next_call_id_++);
}

std::string AgentLoop::format_error_text(const std::string& error) const {
  std::string err;
  auto text = prompts_.render("format_error", {{"error", error}}, &err);
  // A broken override must not hide the parser's message from the model.
  return text ? *text : "Your last message could not be parsed: " + error;
}

void AgentLoop::context_applied(const ContextRecord& record, RunResult& result) {
  ++result.resets;
  add_usage(result.usage, record.summary_usage);
  listener_->on_context(record);
  if (trajectory_) trajectory_result(trajectory_->add_context_record(record));
}

RunResult AgentLoop::finish(RunResult result, FinalStatus status, std::string error) {
  result.status = status;
  result.error = std::move(error);
  if (trajectory_) {
    json details{{"steps", result.steps}, {"tool_calls", result.tool_calls}, {"resets", result.resets},
                 {"usage", to_json(result.usage)}};
    if (status == FinalStatus::answered) details["answer"] = result.answer;
    trajectory_result(trajectory_->finish(final_status_name(status), result.error, details));
  }
  listener_->on_final(result);
  return result;
}

RunResult AgentLoop::submit(const std::string& user_message) {
  const auto start = Clock::now();
  const auto deadline = limits_.time_limit_s > 0
                            ? start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(limits_.time_limit_s))
                            : Clock::time_point::max();
  for (const auto& m : conv_.messages())
    for (const auto& c : m.tool_calls) next_call_id_ = std::max(next_call_id_, call_number(c.id) + 1);
  if (trajectory_ && !trajectory_started_) {
    for (const auto& m : conv_.messages())
      if (m.role == Role::system) trajectory_result(trajectory_->add_system(m.content));
    trajectory_started_ = true;
  }
  // Text that reaches the conversation is valid UTF-8 (a server's JSON needs it): invalid bytes of
  // a message, a file or a command's output become U+FFFD.
  const std::string user_text = utf8::to_valid_lossy(user_message);
  conv_.append_user(user_text);
  if (trajectory_) trajectory_result(trajectory_->add_user(user_text));
  format_errors_in_row_ = 0;

  ContextManager context(policy_, prompts_);
  RunResult result;
  auto done = [&](FinalStatus status, std::string error = {}) {
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return finish(std::move(result), status, std::move(error));
  };
  for (;;) {
    if (interrupted()) return done(FinalStatus::interrupted, "interrupted by the user");
    if (Clock::now() >= deadline) return done(FinalStatus::timeout, time_limit_text() + " reached");
    if (result.steps >= limits_.max_steps)
      return done(FinalStatus::max_steps, "step limit of " + std::to_string(limits_.max_steps) + " reached");
    if (limits_.max_total_tokens > 0 &&
        result.usage.prompt_tokens + result.usage.completion_tokens >= limits_.max_total_tokens)
      return done(FinalStatus::max_steps,
                  "token limit of " + std::to_string(limits_.max_total_tokens) + " reached");
    if (limits_.max_format_errors > 0 && format_errors_in_row_ >= limits_.max_format_errors)
      return done(FinalStatus::error,
                  std::to_string(format_errors_in_row_) + " malformed model outputs in a row");

    auto checked = context.before_call(llm_, conv_, specs_, gen_);
    if (!checked) return done(FinalStatus::error, checked.error().message);
    if (checked->record) context_applied(*checked->record, result);
    if (checked->status == ContextStatus::context_exhausted) {
      std::string why = "the prompt (" + std::to_string(checked->check.prompt_tokens) +
                        " tokens) does not fit the context window of " + std::to_string(checked->check.window);
      // Nothing answered the message yet: it leaves the conversation, which goes on (in a chat)
      // from where it was before it, rather than overflowing at every later message.
      if (result.steps == 0 && !conv_.empty() && conv_.messages().back().role == Role::user &&
          conv_.messages().back().content == user_text) {
        conv_.drop_last();
        why += "; the message was not kept";
      }
      return done(FinalStatus::context_exhausted, why);
    }
    if (checked->status == ContextStatus::max_resets)
      return done(FinalStatus::max_resets,
                  "the context filled again after " + std::to_string(context.resets()) + " resets");

    listener_->on_step_start(result.steps + 1);
    Sink sink(*listener_, interrupt_, deadline);
    auto generated = llm_.generate(conv_.messages_for_model(gen_.thinking), specs_, gen_, &sink);
    const bool stopped = interrupted() || Clock::now() >= deadline;
    if (warning_source_)
      for (const auto& w : warning_source_()) warn(w);
    if (!generated) {
      if (stopped) continue;  // the loop head reports which
      if (!is_context_overflow_error(generated.error())) return done(FinalStatus::error, generated.error().message);
      auto retried = context.after_overflow_error(llm_, conv_, specs_, gen_);
      if (!retried) return done(FinalStatus::error, retried.error().message);
      if (retried->record) context_applied(*retried->record, result);
      if (retried->status == ContextStatus::context_exhausted)
        return done(FinalStatus::context_exhausted, generated.error().message);
      if (retried->status == ContextStatus::max_resets)
        return done(FinalStatus::max_resets,
                    "the context filled again after " + std::to_string(context.resets()) + " resets");
      continue;
    }
    AssistantTurn turn = std::move(generated).value();
    ++result.steps;
    add_usage(result.usage, turn.usage);

    if (stopped) {
      // Keep what was said, run nothing: a cut turn's calls are not the model's decision yet.
      turn.tool_calls.clear();
      listener_->on_turn(turn);
      if (!turn.content.empty() || !turn.reasoning.empty()) conv_.append_assistant(turn);
      if (trajectory_) {
        trajectory_result(trajectory_->add_agent(turn));
        trajectory_result(trajectory_->add_step_extra("stopped", interrupted() ? "interrupted" : "timeout"));
      }
      continue;
    }

    renumber(turn);
    std::string format_error;
    // A reply cut off by a limit is said to be so, not to be malformed (which a parser also finds
    // of a thinking block or a tool call broken off).
    if (turn.tool_calls.empty() && turn.finish == FinishReason::length) {
      const int64_t n = turn.usage.completion_tokens;
      format_error =
          n > 0 && n < gen_.max_tokens
              ? "the output was cut off after " + std::to_string(n) +
                    " tokens, before it finished (the context window or the server's limit was reached)"
              : "the output reached the limit of " + std::to_string(gen_.max_tokens) + " tokens before it finished";
    } else if (turn.format_error) {
      format_error = turn.format_error->message;
    } else if (turn.tool_calls.empty() && turn.content.empty())
      format_error = "the message had no answer and no tool call";
    listener_->on_turn(turn);
    conv_.append_assistant(turn);
    if (trajectory_) trajectory_result(trajectory_->add_agent(turn));

    if (!format_error.empty()) {
      ++format_errors_in_row_;
      const std::string text = format_error_text(format_error);
      listener_->on_format_error(text);
      std::vector<ObservationResult> results;
      for (const auto& call : turn.tool_calls) {
        conv_.append_tool_result(call.id, text);
        results.push_back({call.id, text});
      }
      if (turn.tool_calls.empty()) conv_.append(Message{.role = Role::user, .content = text}, Origin::note);
      if (trajectory_) {
        trajectory_result(trajectory_->add_step_extra("format_error", format_error));
        if (!results.empty()) trajectory_result(trajectory_->add_observation(results));
      }
      continue;
    }
    format_errors_in_row_ = 0;

    if (turn.tool_calls.empty()) {
      result.answer = turn.content;
      return done(FinalStatus::answered);
    }

    std::vector<ObservationResult> results;
    json durations = json::array();
    for (const auto& call : turn.tool_calls) {
      Observation obs;
      const auto now = Clock::now();
      if (interrupted()) {
        obs = Observation{.text = "not run: the user interrupted the agent", .is_error = true};
      } else if (now >= deadline) {
        obs = Observation{.text = "not run: the " + time_limit_text() + " was reached", .is_error = true};
      } else {
        listener_->on_tool_call(call);
        // A call ends by the run's time limit at the latest.
        const std::chrono::seconds per_call = tool_ctx_.timeout;
        if (deadline != Clock::time_point::max()) {
          const double left = std::chrono::duration<double>(deadline - now).count();
          tool_ctx_.timeout = std::min(per_call, std::chrono::seconds(std::max<int64_t>(1, int64_t(std::ceil(left)))));
        }
        obs = tools_.call(call, tool_ctx_);
        tool_ctx_.timeout = per_call;
        obs.text = utf8::to_valid_lossy(obs.text);
        ++result.tool_calls;
      }
      listener_->on_tool_result(call, obs);
      conv_.append_tool_result(call.id, obs.text);
      results.push_back({call.id, obs.text});
      durations.push_back(json{{"tool_call_id", call.id}, {"seconds", obs.seconds}, {"is_error", obs.is_error}});
    }
    if (trajectory_) {
      trajectory_result(trajectory_->add_observation(results));
      trajectory_result(trajectory_->add_step_extra("tool_results", durations));
    }
  }
}

std::string AgentLoop::time_limit_text() const { return fmt::format("time limit of {:g} s", limits_.time_limit_s); }

Result<std::string> render_system_prompt(const prompts::PromptSet& prompts, std::span<const ToolSpec> tools,
                                         const ToolContext& ctx) {
  std::string list;
  for (const auto& t : tools) {
    std::string first_line = t.description.substr(0, t.description.find('\n'));
    list += "- " + t.name + (first_line.empty() ? "" : ": " + first_line) + "\n";
  }
  if (list.empty()) list = "(none)\n";
  list.pop_back();
  const char* mode = ctx.approval == ApprovalMode::ask         ? "ask"
                     : ctx.approval == ApprovalMode::read_only ? "read-only"
                                                               : "auto";
  std::string err;
  auto text = prompts.render("system_coding", {{"work_dir", ctx.workdir.string()}, {"approval_mode", mode}, {"tools", list}},
                             &err);
  if (!text) return make_error(err);
  return *text;
}

}  // namespace dsa::cli
