// Decodes chat-completions SSE streams and JSON completions (see chat_stream_decoder.hpp).
#include "engine/remote/chat_stream_decoder.hpp"

#include "engine/chat/dsml_parser.hpp"
#include "engine/chat/dsv32_format.hpp"
#include "engine/remote/retry_policy.hpp"

namespace dsa {

static int64_t int_field(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<int64_t>();
}

static const json* object_field(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_object()) return nullptr;
  return &j[key];
}

static std::string string_field(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return {};
  return j[key].get<std::string>();
}

Usage usage_from_json(const json& usage) {
  Usage u;
  u.prompt_tokens = int_field(usage, "prompt_tokens");
  u.completion_tokens = int_field(usage, "completion_tokens");
  if (const json* d = object_field(usage, "prompt_tokens_details")) u.cached_tokens = int_field(*d, "cached_tokens");
  if (u.cached_tokens == 0) u.cached_tokens = int_field(usage, "prompt_cache_hit_tokens");
  if (const json* d = object_field(usage, "completion_tokens_details"))
    u.reasoning_tokens = int_field(*d, "reasoning_tokens");
  return u;
}

// OpenAI's reasons plus DeepSeek's; anything else ("eos", "stop_sequence", ...) ended normally.
static FinishReason parse_finish_reason(const std::string& s) {
  if (s == "length") return FinishReason::length;
  if (s == "tool_calls" || s == "function_call") return FinishReason::tool_calls;
  if (s == "content_filter" || s == "insufficient_system_resource") return FinishReason::error;
  return FinishReason::stop;
}

void ChatStreamDecoder::feed(std::string_view bytes) {
  line_buf_.append(bytes);
  size_t start = 0, nl;
  while ((nl = line_buf_.find('\n', start)) != std::string::npos) {
    std::string_view line(line_buf_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    on_line(line);
    start = nl + 1;
  }
  line_buf_.erase(0, start);
}

// SSE: `data:` lines accumulate (joined by \n) until a blank line ends the event; comments (`:`)
// and other fields (event, id, retry) carry nothing chat completions use.
void ChatStreamDecoder::on_line(std::string_view line) {
  if (line.empty()) {
    if (!event_data_.empty()) on_event(event_data_);
    event_data_.clear();
    return;
  }
  if (!line.starts_with("data:")) return;
  line.remove_prefix(5);
  if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (!event_data_.empty()) event_data_ += '\n';
  event_data_.append(line);
}

void ChatStreamDecoder::on_event(const std::string& data) {
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  json chunk = json::parse(data, nullptr, false);
  if (chunk.is_discarded() || !chunk.is_object()) {
    if (malformed_chunk_.empty()) malformed_chunk_ = one_line(data.empty() ? "(empty)" : data, 120);
    return;
  }
  if (chunk.contains("error")) {
    const json& e = chunk["error"];
    stream_error_ = e.is_string() ? e.get<std::string>() : string_field(e, "message");
    if (stream_error_.empty()) stream_error_ = e.dump();
    return;
  }
  if (chunk.contains("choices") && chunk["choices"].is_array() && !chunk["choices"].empty())
    apply_choice(chunk["choices"][0], false);
  if (chunk.contains("usage") && chunk["usage"].is_object()) turn_.usage = usage_from_json(chunk["usage"]);
}

void ChatStreamDecoder::apply_choice(const json& choice, bool whole_message) {
  const json* delta = object_field(choice, whole_message ? "message" : "delta");
  if (delta) {
    // vLLM names the field `reasoning`; DeepSeek and SGLang `reasoning_content`.
    std::string reasoning = string_field(*delta, "reasoning_content");
    if (reasoning.empty()) reasoning = string_field(*delta, "reasoning");
    if (!reasoning.empty()) {
      turn_.reasoning += reasoning;
      if (sink_) sink_->on_reasoning(reasoning);
    }
    std::string content = string_field(*delta, "content");
    if (!content.empty()) {
      turn_.content += content;
      if (sink_) sink_->on_content(content);
    }
    if (delta->contains("tool_calls") && (*delta)["tool_calls"].is_array()) {
      int position = 0;
      for (const auto& tc : (*delta)["tool_calls"]) apply_tool_call(tc, whole_message ? position++ : -1);
    }
  }
  std::string reason = string_field(choice, "finish_reason");
  if (!reason.empty()) {
    finish_ = parse_finish_reason(reason);
    server_interrupted_ = reason == "insufficient_system_resource";
  }
}

// Stream fragments are addressed by `index`: the first fragment of a call brings its id and name,
// later ones only pieces of `arguments`. A whole message lists calls in order (position >= 0).
void ChatStreamDecoder::apply_tool_call(const json& tc, int position) {
  if (!tc.is_object()) return;
  int index = position >= 0 ? position : static_cast<int>(int_field(tc, "index"));
  auto [it, fresh] = call_slot_.try_emplace(index, turn_.tool_calls.size());
  if (fresh) {
    emit_tool_calls_before(turn_.tool_calls.size());  // calls are streamed one after another
    turn_.tool_calls.emplace_back();
  }
  ToolCall& call = turn_.tool_calls[it->second];
  if (call.id.empty()) call.id = string_field(tc, "id");
  const json* f = object_field(tc, "function");
  if (!f) return;
  if (call.name.empty()) call.name = string_field(*f, "name");
  if (f->contains("arguments")) {
    const json& a = (*f)["arguments"];
    if (a.is_string()) call.arguments += a.get<std::string>();
    else if (a.is_object()) call.arguments = a.dump();
  }
}

void ChatStreamDecoder::emit_tool_calls_before(size_t n) {
  for (; n_emitted_ < n; ++n_emitted_) {
    ToolCall& call = turn_.tool_calls[n_emitted_];
    if (call.id.empty()) call.id = "call_" + std::to_string(n_emitted_);
    if (call.arguments.empty()) call.arguments = "{}";
    if (sink_) sink_->on_tool_call(call);
  }
}

Result<void> ChatStreamDecoder::decode_json(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
      j["choices"].empty())
    return make_error("response is neither an event stream nor a chat completion: " + one_line(body, 120));
  apply_choice(j["choices"][0], true);
  if (j.contains("usage") && j["usage"].is_object()) turn_.usage = usage_from_json(j["usage"]);
  if (!finish_) finish_ = FinishReason::stop;
  return {};
}

void ChatStreamDecoder::check_tool_arguments() {
  std::string problems;
  for (const auto& call : turn_.tool_calls) {
    if (json::parse(call.arguments, nullptr, false).is_object()) continue;
    std::string excerpt = call.arguments.size() > 80 ? call.arguments.substr(0, 80) + "..." : call.arguments;
    problems += (problems.empty() ? "" : "; ") + std::string("the arguments of tool call ") + call.id + " (" +
                call.name + ") are not a JSON object: " + excerpt;
  }
  if (!problems.empty()) turn_.format_error = FormatError{"malformed reply: " + problems};
}

void ChatStreamDecoder::parse_dsml_content() {
  if (!turn_.tool_calls.empty() || turn_.content.find(dsv32::function_calls_open) == std::string::npos) return;
  AssistantTurn parsed = parse_completion(turn_.content, /*thinking=*/false);
  turn_.content = std::move(parsed.content);
  turn_.tool_calls = std::move(parsed.tool_calls);
  if (parsed.format_error) turn_.format_error = std::move(parsed.format_error);
}

AssistantTurn ChatStreamDecoder::finish(bool stopped) {
  if (stopped) {
    turn_.tool_calls.resize(n_emitted_);
    turn_.finish = FinishReason::stop;
  } else {
    parse_dsml_content();
    emit_tool_calls_before(turn_.tool_calls.size());
    turn_.finish = finish_.value_or(FinishReason::stop);
    // Servers disagree on "stop" vs "tool_calls" for a turn that ends in calls; the calls decide.
    if (!turn_.tool_calls.empty() && turn_.finish == FinishReason::stop) turn_.finish = FinishReason::tool_calls;
    if (turn_.tool_calls.empty() && turn_.finish == FinishReason::tool_calls) turn_.finish = FinishReason::stop;
  }
  check_tool_arguments();
  return std::move(turn_);
}

}  // namespace dsa
