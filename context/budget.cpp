// Token budget and the summary / discard-75 / discard-all strategies (see budget.hpp).
#include "context/budget.hpp"

#include <algorithm>
#include <cctype>

namespace dsa {

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::none:
      return "none";
    case Strategy::summary:
      return "summary";
    case Strategy::discard_75:
      return "discard-75";
    case Strategy::discard_all:
      return "discard-all";
  }
  return "?";
}

std::optional<Strategy> parse_strategy(std::string_view s) {
  for (Strategy v : {Strategy::none, Strategy::summary, Strategy::discard_75, Strategy::discard_all})
    if (s == strategy_name(v)) return v;
  return std::nullopt;
}

const char* trigger_name(ContextTrigger t) { return t == ContextTrigger::budget ? "budget" : "server_overflow"; }

const char* context_status_name(ContextStatus s) {
  switch (s) {
    case ContextStatus::proceed:
      return "proceed";
    case ContextStatus::context_exhausted:
      return "context_exhausted";
    case ContextStatus::max_resets:
      return "max_resets";
  }
  return "?";
}

json to_json(const ContextRecord& r) {
  json j{{"strategy", strategy_name(r.applied)}, {"requested_strategy", strategy_name(r.requested)},
         {"trigger", trigger_name(r.trigger)},   {"tokens_before", r.tokens_before},
         {"tokens_after", r.tokens_after},       {"rounds_dropped", r.rounds_dropped},
         {"rounds_kept", r.rounds_kept},         {"reset_index", r.reset_index}};
  if (r.requested == Strategy::summary) {
    j["summary"] = r.summary;
    j["summary_usage"] = to_json(r.summary_usage);
  }
  if (!r.fallback_reason.empty()) j["fallback_reason"] = r.fallback_reason;
  return j;
}

Result<void> check_policy(const ContextPolicy& p) {
  if (!(p.trigger > 0.0 && p.trigger <= 1.0))
    return make_error("--context-trigger must be in (0, 1], got " + std::to_string(p.trigger));
  if (p.window <= 0) return make_error("--context-window must be positive, got " + std::to_string(p.window));
  if (p.max_resets < 0) return make_error("--max-resets must be 0 or more, got " + std::to_string(p.max_resets));
  return {};
}

bool is_context_overflow_error(const Error& e) {
  std::string s = e.message;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* pattern : {"context length", "context_length", "maximum context", "context window",
                              "prompt is too long", "too many tokens", "reduce the length"})
    if (s.find(pattern) != std::string::npos) return true;
  return false;
}

BudgetCheck check_budget(const ContextPolicy& policy, Llm& llm, const Conversation& conv,
                         std::span<const ToolSpec> tools, bool thinking) {
  BudgetCheck c;
  c.prompt_tokens = llm.count_tokens(conv.messages_for_model(thinking), tools, thinking);
  c.trigger_tokens = policy.trigger_tokens();
  c.window = policy.window;
  return c;
}

namespace {

Result<std::string> render(const prompts::PromptSet& prompts, std::string_view name, const prompts::Vars& vars) {
  std::string err;
  auto text = prompts.render(name, vars, &err);
  if (!text) return make_error(err);
  return std::move(*text);
}

// The rounds discard-75 drops: a prefix of `rounds`, never empty when there is a round.
size_t rounds_to_drop_75(const ContextPolicy& policy, Llm& llm, const Conversation& conv,
                         const std::vector<Round>& rounds, bool thinking) {
  if (!policy.discard_by_tokens) return rounds.size() - rounds.size() / 4;  // the newest floor(n/4) stay
  // Each round measured on its own (as the model sees it): only the proportions matter here.
  const std::vector<Message> seen = conv.messages_for_model(thinking);
  std::vector<int64_t> tokens;
  int64_t total = 0;
  for (const Round& r : rounds) {
    std::vector<Message> slice(seen.begin() + static_cast<std::ptrdiff_t>(r.begin),
                               seen.begin() + static_cast<std::ptrdiff_t>(r.end));
    tokens.push_back(llm.count_tokens(slice, {}, thinking));
    total += tokens.back();
  }
  size_t n = 0;
  int64_t dropped = 0;
  while (n < rounds.size() && (n == 0 || dropped * 4 < total * 3)) dropped += tokens[n++];
  return n;
}

}  // namespace

ContextManager::ContextManager(ContextPolicy policy, const prompts::PromptSet& prompts)
    : policy_(policy), prompts_(prompts) {}

Result<std::optional<ContextRecord>> ContextManager::apply(Llm& llm, Conversation& conv,
                                                           std::span<const ToolSpec> tools, const GenOptions& options,
                                                           ContextTrigger trigger) {
  if (policy_.strategy == Strategy::none) return std::optional<ContextRecord>();
  const std::vector<Round> rounds = conv.rounds();
  std::vector<size_t> injected;  // earlier summaries and notes: replaced by this application
  for (size_t i = 0; i < conv.size(); ++i)
    if (conv.origin(i) != Origin::conversation) injected.push_back(i);
  // With no round there is nothing worth removing (an earlier note or summary is small).
  if (rounds.empty()) return std::optional<ContextRecord>();

  ContextRecord rec;
  rec.requested = policy_.strategy;
  rec.applied = policy_.strategy;
  rec.trigger = trigger;
  rec.tokens_before = check_budget(policy_, llm, conv, tools, options.thinking).prompt_tokens;

  std::optional<Message> resume;  // the summary message to restart from
  if (policy_.strategy == Strategy::summary) {
    DSA_TRY(request, render(prompts_, "summary", {}));
    std::vector<Message> msgs = conv.messages_for_model(options.thinking);
    msgs.push_back(Message{.role = Role::user, .content = std::move(request)});
    Result<AssistantTurn> turn = llm.generate(msgs, tools, options, nullptr);
    if (!turn) {
      rec.fallback_reason = "summary call failed: " + turn.error().message;
    } else {
      rec.summary_usage = turn->usage;
      if (turn->format_error)
        rec.fallback_reason = "summary call produced malformed output: " + turn->format_error->message;
      else if (turn->content.find_first_not_of(" \t\r\n") == std::string::npos)
        rec.fallback_reason = turn->tool_calls.empty() ? "summary call returned no text"
                                                       : "summary call returned tool calls instead of text";
    }
    if (rec.fallback_reason.empty()) {
      rec.summary = turn->content;
      DSA_TRY(text, render(prompts_, "summary_resume", {{"summary", rec.summary}}));
      resume = Message{.role = Role::user, .content = std::move(text)};
    } else {
      rec.applied = Strategy::discard_all;
    }
  }

  size_t n_drop = rounds.size();
  if (rec.applied == Strategy::discard_75) n_drop = rounds_to_drop_75(policy_, llm, conv, rounds, options.thinking);
  rec.rounds_dropped = static_cast<int>(n_drop);
  rec.rounds_kept = static_cast<int>(rounds.size() - n_drop);

  // Rendered before anything changes, so a broken template leaves the conversation as it was.
  std::optional<Message> note;
  if (!resume && policy_.note_after_discard) {
    DSA_TRY(text, render(prompts_, "history_dropped", {{"rounds_dropped", std::to_string(n_drop)}}));
    note = Message{.role = Role::user, .content = std::move(text)};
  }

  std::vector<bool> gone(conv.size(), false);
  for (size_t i : injected) gone[i] = true;
  for (size_t r = 0; r < n_drop; ++r)
    for (size_t i = rounds[r].begin; i < rounds[r].end; ++i) gone[i] = true;
  // Where the note goes: where the first dropped round was, so that kept rounds stay after it.
  const size_t first_gone = rounds[0].begin;  // n_drop >= 1: discards always take the oldest
  size_t note_at = 0;
  std::vector<size_t> remove;
  for (size_t i = 0; i < conv.size(); ++i) {
    if (gone[i])
      remove.push_back(i);
    else if (i < first_gone)
      ++note_at;
  }
  conv.remove(remove);

  if (resume) conv.append(std::move(*resume), Origin::summary);
  if (note) conv.insert(note_at, std::move(*note), Origin::note);

  rec.tokens_after = check_budget(policy_, llm, conv, tools, options.thinking).prompt_tokens;
  rec.reset_index = ++resets_;
  return std::optional<ContextRecord>(std::move(rec));
}

Result<ContextOutcome> ContextManager::before_call(Llm& llm, Conversation& conv, std::span<const ToolSpec> tools,
                                                   const GenOptions& options) {
  ContextOutcome out;
  out.check = check_budget(policy_, llm, conv, tools, options.thinking);
  if (!out.check.over_trigger()) return out;
  if (policy_.strategy != Strategy::none) {
    if (resets_ >= policy_.max_resets) {
      out.status = ContextStatus::max_resets;
      return out;
    }
    DSA_TRY(rec, apply(llm, conv, tools, options, ContextTrigger::budget));
    if (rec) {
      out.check.prompt_tokens = rec->tokens_after;
      out.record = std::move(rec);
    }
  }
  if (out.check.over_window()) out.status = ContextStatus::context_exhausted;
  return out;
}

Result<ContextOutcome> ContextManager::after_overflow_error(Llm& llm, Conversation& conv,
                                                            std::span<const ToolSpec> tools,
                                                            const GenOptions& options) {
  ContextOutcome out;
  out.check = check_budget(policy_, llm, conv, tools, options.thinking);
  if (policy_.strategy == Strategy::none) {
    out.status = ContextStatus::context_exhausted;
    return out;
  }
  if (resets_ >= policy_.max_resets) {
    out.status = ContextStatus::max_resets;
    return out;
  }
  DSA_TRY(rec, apply(llm, conv, tools, options, ContextTrigger::server_overflow));
  if (!rec) {
    out.status = ContextStatus::context_exhausted;
    return out;
  }
  out.check.prompt_tokens = rec->tokens_after;
  out.record = std::move(rec);
  return out;
}

}  // namespace dsa
