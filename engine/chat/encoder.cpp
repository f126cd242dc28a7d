// DeepSeek-V3.2 prompt encoder (see encoder.hpp; rules in model-spec.md 10.2).
#include "engine/chat/encoder.hpp"

#include <optional>

#include "engine/chat/dsv32_format.hpp"
#include "engine/chat/py_json.hpp"

namespace dsa {

namespace {

// Appends text to the piece list, merging with the previous piece of the same kind.
class PieceWriter {
 public:
  void markup(std::string_view s) { add(s, true); }
  void text(std::string_view s) { add(s, false); }
  std::vector<PromptPiece> take() { return std::move(pieces_); }

 private:
  void add(std::string_view s, bool is_template) {
    if (s.empty()) return;
    if (!pieces_.empty() && pieces_.back().is_template == is_template) {
      pieces_.back().text += s;
    } else {
      pieces_.push_back(PromptPiece{std::string(s), is_template});
    }
  }
  std::vector<PromptPiece> pieces_;
};

bool is_user_turn(const Message& m) { return m.role == Role::user || m.role == Role::developer; }

std::optional<size_t> last_user_index(std::span<const Message> messages) {
  for (size_t i = messages.size(); i-- > 0;)
    if (is_user_turn(messages[i])) return i;
  return std::nullopt;
}

// For the tool message at `index`: the assistant it answers and its 1-based position in the run
// of tool messages after it. Nothing when there is no such assistant.
struct ToolAnswer {
  const Message* assistant;
  size_t order;
};
std::optional<ToolAnswer> find_answered(std::span<const Message> messages, size_t index) {
  size_t i = index;
  while (i > 0 && messages[i - 1].role == Role::tool) --i;
  if (i == 0 || messages[i - 1].role != Role::assistant) return std::nullopt;
  return ToolAnswer{&messages[i - 1], index - i + 1};
}

std::optional<json> parse_arguments(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

void write_tools(PieceWriter& w, std::span<const ToolSpec> tools) {
  w.markup("\n\n");
  w.markup(dsv32::tools_prompt_head);
  for (size_t i = 0; i < tools.size(); ++i) {
    if (i > 0) w.markup("\n");
    const json fn{{"name", tools[i].name}, {"description", tools[i].description},
                  {"parameters", tools[i].parameters}};
    w.text(py_json_dumps(fn));
  }
  w.markup(dsv32::tools_prompt_tail);
}

void write_response_format(PieceWriter& w, const Message& m) {
  if (!m.response_format) return;
  w.markup("\n\n");
  w.markup(dsv32::response_format_prefix);
  w.text(py_json_dumps(*m.response_format));
}

void write_tool_calls(PieceWriter& w, const std::vector<ToolCall>& calls) {
  if (calls.empty()) return;
  w.markup("\n\n");
  w.markup(dsv32::function_calls_open);
  w.markup(">\n");
  for (size_t c = 0; c < calls.size(); ++c) {
    if (c > 0) w.markup("\n");
    w.markup(dsv32::invoke_open);
    w.markup(" name=\"");
    w.text(calls[c].name);
    w.markup("\">\n");
    const auto args = parse_arguments(calls[c].arguments);
    DSA_CHECK(args.has_value(), "tool-call arguments must be a JSON object (check_conversation first)");
    bool first = true;
    for (const auto& [key, value] : args->items()) {
      if (!first) w.markup("\n");
      first = false;
      w.markup(dsv32::parameter_open);
      w.markup(" name=\"");
      w.text(key);
      if (value.is_string()) {
        w.markup("\" string=\"true\">");
        w.text(value.get_ref<const std::string&>());
      } else {
        w.markup("\" string=\"false\">");
        w.text(py_json_dumps(value));
      }
      w.markup(dsv32::parameter_close);
    }
    w.markup("\n");
    w.markup(dsv32::invoke_close);
  }
  w.markup("\n");
  w.markup(dsv32::function_calls_close);
}

}  // namespace

Result<void> check_conversation(std::span<const Message> messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const std::string where = "message " + std::to_string(i) + " (" + role_name(m.role) + ")";
    if (m.role == Role::tool) {
      const auto answered = find_answered(messages, i);
      if (!answered || answered->assistant->tool_calls.empty())
        return make_error(where + ": a tool result must follow an assistant message with tool calls");
      if (answered->order > answered->assistant->tool_calls.size())
        return make_error(where + ": more tool results than the assistant's " +
                          std::to_string(answered->assistant->tool_calls.size()) + " tool call(s)");
    }
    for (const ToolCall& call : m.tool_calls) {
      if (!parse_arguments(call.arguments))
        return make_error(where + ": arguments of tool call '" + call.name + "' are not a JSON object");
    }
  }
  return {};
}

std::vector<PromptPiece> encode_messages(std::span<const Message> messages, std::span<const ToolSpec> tools,
                                         const EncodeOptions& opt) {
  DSA_CHECK(check_conversation(messages).ok(), "encode_messages needs a conversation check_conversation accepts");
  const std::optional<size_t> last_user = last_user_index(messages);
  // Whether the turn at `index` is rendered as a current one: a user turn or tool block ending in
  // "<think>", an assistant turn showing its reasoning. With drop_thinking that is the turns from
  // the last user/developer message on (DeepSeek's `index >= last_user_idx`; an assistant is never
  // at last_user_idx, so its `index > last_user_idx` is the same test).
  auto current_turn = [&](size_t index) {
    return opt.thinking && (!opt.drop_thinking || !last_user || index >= *last_user);
  };

  PieceWriter w;
  if (opt.add_bos) w.markup(dsv32::bos);

  std::optional<size_t> tools_at;
  if (!tools.empty()) {
    for (size_t i = 0; i < messages.size() && !tools_at; ++i)
      if (messages[i].role == Role::system) tools_at = i;
    if (!tools_at) write_tools(w, tools);  // an empty system message at the front
  }

  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    switch (m.role) {
      case Role::system:
        w.text(m.content);
        if (tools_at == i) write_tools(w, tools);
        write_response_format(w, m);
        break;
      case Role::user:
      case Role::developer:
        w.markup(dsv32::user_start);
        if (m.role == Role::developer) {
          write_response_format(w, m);
          w.markup(dsv32::developer_message_prefix);
        }
        w.text(m.content);
        w.markup(dsv32::assistant_start);
        w.markup(current_turn(i) ? dsv32::think_start : dsv32::think_end);
        break;
      case Role::assistant:
        if (current_turn(i)) {
          w.text(m.reasoning_content.value_or(""));
          w.markup(dsv32::think_end);
        }
        w.text(m.content);
        write_tool_calls(w, m.tool_calls);
        w.markup(dsv32::eos);
        break;
      case Role::tool: {
        const auto answered = find_answered(messages, i);
        if (answered->order == 1) w.markup(dsv32::function_results_open);
        w.markup(dsv32::result_open);
        w.text(m.content);
        w.markup(dsv32::result_close);
        if (answered->order == answered->assistant->tool_calls.size()) {
          w.markup(dsv32::function_results_close);
          w.markup("\n\n");
          w.markup(current_turn(i) ? dsv32::think_start : dsv32::think_end);
        }
        break;
      }
    }
  }
  return w.take();
}

std::string join_text(std::span<const PromptPiece> pieces) {
  std::string out;
  for (const auto& p : pieces) out += p.text;
  return out;
}

size_t stable_prefix_bytes(std::span<const Message> messages, std::span<const ToolSpec> tools,
                           const EncodeOptions& opt) {
  const std::optional<size_t> last_user = last_user_index(messages);
  if (!opt.thinking || !opt.drop_thinking || !last_user) return join_text(encode_messages(messages, tools, opt)).size();
  // Up to the last user turn, the text does not depend on what follows it except for that turn's
  // closing "<think>", which a later user turn turns into "</think>".
  const size_t through_user = join_text(encode_messages(messages.first(*last_user + 1), tools, opt)).size();
  return through_user - dsv32::think_start.size();
}

}  // namespace dsa
