// ScriptedLlm: a deterministic Llm for agent-loop tests. It replays scripted assistant turns in
// order (or asks a callback for each turn), records every request it receives, and streams each
// turn to the sink as a backend would: the reasoning, then the content, then each tool call, with
// should_stop polled before each piece (a stop drops what was not yet shown and sets finish = stop).
//
// Token counts are an estimate simple enough to work out by hand in a test:
//   bytes / 4 + 4 per message, where bytes = message contents + tool-call names and arguments
//   + the reasoning the model would see (thinking on, assistant messages after the last
//   user/developer message: the retention rule of agent-spec.md section 2)
//   + each tool spec's name, description and compact JSON parameters.
// info().exact_token_count is false, as for a remote server.
//
//   ScriptedLlm llm({ScriptedLlm::calls({{"", "shell", R"({"cmd":"ls"})"}}), ScriptedLlm::answer("Done.")});
//   ... run the loop ...
//   CHECK(llm.requests()[1].messages.back().role == Role::tool);
//
// Not a model: it ignores the request when replaying a list, so a test asserts on requests().
#pragma once
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/api/llm.hpp"

namespace dsa::test {

class ScriptedLlm final : public Llm {
 public:
  struct Request {
    std::vector<Message> messages;
    std::vector<ToolSpec> tools;
    GenOptions options;
  };
  // Produces the turn for the n-th request (n from 0). An Error is returned by generate as is, so a
  // test can script failures (e.g. "context_length_exceeded: ...").
  using Responder = std::function<Result<AssistantTurn>(const Request& request, size_t n)>;

  explicit ScriptedLlm(std::vector<AssistantTurn> turns, int64_t context_window = 131072)
      : turns_(std::move(turns)), context_window_(context_window) {}
  explicit ScriptedLlm(Responder responder, int64_t context_window = 131072)
      : responder_(std::move(responder)), context_window_(context_window) {}

  // A final answer (finish = stop).
  static AssistantTurn answer(std::string content, std::string reasoning = "") {
    AssistantTurn t;
    t.content = std::move(content);
    t.reasoning = std::move(reasoning);
    return t;
  }
  // A turn that calls tools (finish = tool_calls). Empty ids become "call_0", "call_1", ... as the
  // local engine numbers them.
  static AssistantTurn calls(std::vector<ToolCall> tool_calls, std::string reasoning = "", std::string content = "") {
    AssistantTurn t;
    t.tool_calls = std::move(tool_calls);
    t.reasoning = std::move(reasoning);
    t.content = std::move(content);
    t.finish = FinishReason::tool_calls;
    return t;
  }

  // Usage left at zero in a scripted turn is filled in: prompt_tokens = count_tokens of the
  // request, completion_tokens = (reasoning + content + calls bytes) / 4.
  Result<AssistantTurn> generate(const std::vector<Message>& messages, std::span<const ToolSpec> tools,
                                 const GenOptions& options, StreamSink* sink) override {
    Request request{messages, std::vector<ToolSpec>(tools.begin(), tools.end()), options};
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = requests_.size();
      requests_.push_back(request);
    }
    Result<AssistantTurn> next = responder_ ? responder_(request, n) : scripted(n);
    if (!next.ok()) return next;
    AssistantTurn turn = std::move(next).value();
    for (size_t i = 0; i < turn.tool_calls.size(); ++i)
      if (turn.tool_calls[i].id.empty()) turn.tool_calls[i].id = "call_" + std::to_string(i);
    if (turn.usage.prompt_tokens == 0) turn.usage.prompt_tokens = estimate_tokens(messages, tools, options.thinking);
    if (turn.usage.completion_tokens == 0) {
      size_t bytes = turn.reasoning.size() + turn.content.size();
      for (const auto& c : turn.tool_calls) bytes += c.name.size() + c.arguments.size();
      turn.usage.completion_tokens = static_cast<int64_t>(bytes / 4);
    }
    stream(turn, sink);
    return turn;
  }

  int64_t count_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking) override {
    return estimate_tokens(messages, tools, thinking);
  }

  ModelInfo info() override { return ModelInfo{"scripted", context_window_, false}; }

  // The formula of count_tokens (see the header comment).
  static int64_t estimate_tokens(const std::vector<Message>& messages, std::span<const ToolSpec> tools, bool thinking) {
    size_t first_visible_reasoning = 0;  // reasoning before the last user/developer message is dropped
    for (size_t i = 0; i < messages.size(); ++i)
      if (messages[i].role == Role::user || messages[i].role == Role::developer) first_visible_reasoning = i + 1;
    size_t bytes = 0;
    for (size_t i = 0; i < messages.size(); ++i) {
      const Message& m = messages[i];
      bytes += m.content.size();
      if (thinking && i >= first_visible_reasoning && m.reasoning_content) bytes += m.reasoning_content->size();
      for (const auto& c : m.tool_calls) bytes += c.name.size() + c.arguments.size();
    }
    for (const auto& t : tools) bytes += t.name.size() + t.description.size() + t.parameters.dump().size();
    return static_cast<int64_t>(bytes / 4 + 4 * messages.size());
  }

  // Every request so far, in arrival order. A reference, so `requests()[1].messages` can be held;
  // read it while no generate call is running.
  const std::vector<Request>& requests() const { return requests_; }
  size_t n_requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }

 private:
  Result<AssistantTurn> scripted(size_t n) const {
    if (n >= turns_.size())
      return Error{"scripted model: request " + std::to_string(n + 1) + " arrived but the script has only " +
                   std::to_string(turns_.size()) + " turns"};
    return turns_[n];
  }

  static void stream(AssistantTurn& turn, StreamSink* sink) {
    if (!sink) return;
    auto stop = [&](size_t n_calls_shown) {
      turn.tool_calls.resize(n_calls_shown);
      turn.finish = FinishReason::stop;
    };
    if (sink->should_stop()) {
      turn.reasoning.clear();
      turn.content.clear();
      return stop(0);
    }
    if (!turn.reasoning.empty()) sink->on_reasoning(turn.reasoning);
    if (sink->should_stop()) {
      turn.content.clear();
      return stop(0);
    }
    if (!turn.content.empty()) sink->on_content(turn.content);
    for (size_t i = 0; i < turn.tool_calls.size(); ++i) {
      if (sink->should_stop()) return stop(i);
      sink->on_tool_call(turn.tool_calls[i]);
    }
  }

  std::vector<AssistantTurn> turns_;
  Responder responder_;
  int64_t context_window_;
  mutable std::mutex mu_;
  std::vector<Request> requests_;
};

}  // namespace dsa::test
