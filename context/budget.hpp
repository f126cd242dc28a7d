// The token budget and the paper's context-management strategies (agent-spec.md 3, DeepSeek-V3.2
// paper 4.4): when the prompt of the next call passes `trigger` x `window` tokens, or the server
// answers "context length exceeded", the conversation is cut down by one of
//   none         stop with context_exhausted once the window itself is full;
//   summary      one extra model call summarises the trajectory (prompt: summary.txt); the rollout
//                restarts from system + task + the summary (summary_resume.txt); if that call
//                fails, discard-all is applied instead and the record says so;
//   discard-75   drop the oldest 75% of rounds (by count: the newest floor(n/4) stay; or, with
//                discard_by_tokens, the oldest rounds until 75% of the round tokens are gone);
//                the rounds kept keep their reasoning;
//   discard-all  drop every round and continue from system + task.
// Only whole rounds go (conversation.hpp), plus earlier summaries and notes; the system prompt,
// the tool schemas and the user/developer messages always stay. With note_after_discard, a short
// note (history_dropped.txt) tells the model that history was removed; it is placed where the
// removed rounds were, before any kept round, so the kept rounds keep their reasoning.
//
// Tokens are measured with Llm::count_tokens on Conversation::messages_for_model, i.e. what the
// model actually sees: exact for the local engine, an estimate for a remote one.
//
// The loop's use, before every model call:
//   ContextManager ctx(policy, prompts);
//   DSA_TRY(m, ctx.before_call(llm, conv, tools, gen));
//   if (m.record) trajectory.add_context_record(*m.record);
//   if (m.status != ContextStatus::proceed) -> final state context_status_name(m.status)
// and after a generate() error e with is_context_overflow_error(e): ctx.after_overflow_error(...)
// then retry the call (or stop on the status it returns).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "context/conversation.hpp"
#include "engine/api/llm.hpp"
#include "engine/api/result.hpp"
#include "engine/api/types.hpp"
#include "prompts/render.hpp"

namespace dsa {

enum class Strategy { none, summary, discard_75, discard_all };

// "none", "summary", "discard-75", "discard-all" (the --context-strategy names).
const char* strategy_name(Strategy s);
std::optional<Strategy> parse_strategy(std::string_view s);

struct ContextPolicy {
  double trigger = 0.8;                       // fraction of the window at which a strategy applies
  int64_t window = 131072;                    // tokens
  Strategy strategy = Strategy::discard_all;  // the paper's best on BrowseComp
  bool discard_by_tokens = false;             // discard-75 measures the 75% in tokens instead of rounds
  bool note_after_discard = true;             // insert history_dropped.txt after a discard
  int max_resets = 10;                        // applications allowed per run; the next one stops the run

  int64_t trigger_tokens() const { return static_cast<int64_t>(trigger * static_cast<double>(window)); }
};

// A policy the strategies can work with: 0 < trigger <= 1, window > 0, max_resets >= 0. The error
// names the command-line flag (--context-trigger, --context-window, --max-resets).
Result<void> check_policy(const ContextPolicy& policy);

// One measurement of the next request.
struct BudgetCheck {
  int64_t prompt_tokens = 0;   // count_tokens(messages_for_model(thinking), tools, thinking)
  int64_t trigger_tokens = 0;  // policy.trigger_tokens()
  int64_t window = 0;
  bool over_trigger() const { return prompt_tokens > trigger_tokens; }
  bool over_window() const { return prompt_tokens > window; }
};

BudgetCheck check_budget(const ContextPolicy& policy, Llm& llm, const Conversation& conv,
                         std::span<const ToolSpec> tools, bool thinking);

enum class ContextTrigger { budget, server_overflow };
const char* trigger_name(ContextTrigger t);  // "budget", "server_overflow"

// One application of a strategy, written to the trajectory (trajectory.hpp) as is.
struct ContextRecord {
  Strategy requested = Strategy::none;  // the policy's strategy
  Strategy applied = Strategy::none;    // differs from requested when summary fell back to discard-all
  ContextTrigger trigger = ContextTrigger::budget;
  int64_t tokens_before = 0;  // prompt tokens of the next request before / after
  int64_t tokens_after = 0;
  int rounds_dropped = 0;
  int rounds_kept = 0;
  int reset_index = 0;          // 1 for the first application of the run, 2 for the next...
  std::string summary;          // the summary text (applied == summary)
  Usage summary_usage;          // tokens of the extra summary call (also when it failed)
  std::string fallback_reason;  // why summary fell back to discard-all; empty otherwise
};

json to_json(const ContextRecord& r);

// What the loop does next.
enum class ContextStatus {
  proceed,            // call the model
  context_exhausted,  // the prompt does not fit the window and nothing (more) can be removed
  max_resets,         // a strategy was needed but policy.max_resets applications were used
};
const char* context_status_name(ContextStatus s);  // "proceed", "context_exhausted", "max_resets"

struct ContextOutcome {
  ContextStatus status = ContextStatus::proceed;
  std::optional<ContextRecord> record;  // set when a strategy was applied
  BudgetCheck check;                    // the measurement the status is based on (after any application)
};

// True for a backend error that says the prompt was too long for the server ("context length",
// "maximum context", "context_length_exceeded", "prompt is too long", ...).
bool is_context_overflow_error(const Error& e);

// Applies `policy` over one run; counts the resets.
class ContextManager {
 public:
  // `prompts` must outlive the manager (summary.txt, summary_resume.txt, history_dropped.txt).
  ContextManager(ContextPolicy policy, const prompts::PromptSet& prompts);

  const ContextPolicy& policy() const { return policy_; }
  int resets() const { return resets_; }

  // Before each model call: measure; over the trigger, apply the strategy (none: only stops when
  // over the window). After an application the prompt is measured again: still over the window
  // means context_exhausted. When there is nothing to remove the run proceeds while it fits the
  // window. `options` are used for the summary call (its thinking flag also selects the retention).
  // Errors: only a template that fails to render (a broken --prompts-dir override).
  Result<ContextOutcome> before_call(Llm& llm, Conversation& conv, std::span<const ToolSpec> tools,
                                     const GenOptions& options);

  // After the server refused the prompt as too long: apply the strategy whatever the count says
  // (the count may be an estimate). none, or nothing left to remove: context_exhausted.
  Result<ContextOutcome> after_overflow_error(Llm& llm, Conversation& conv, std::span<const ToolSpec> tools,
                                              const GenOptions& options);

  // Applies the policy's strategy once now (what the two above call), counting a reset. Returns
  // nullopt when the strategy is none or there is no round to remove.
  Result<std::optional<ContextRecord>> apply(Llm& llm, Conversation& conv, std::span<const ToolSpec> tools,
                                             const GenOptions& options, ContextTrigger trigger);

 private:
  ContextPolicy policy_;
  const prompts::PromptSet& prompts_;
  int resets_ = 0;
};

}  // namespace dsa
