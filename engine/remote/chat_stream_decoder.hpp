// Decodes chat-completions responses into an AssistantTurn: the server-sent-event stream
// (`data: {chunk}` events ending with `data: [DONE]`) or, when a server ignores `stream`, one JSON
// completion. Deltas go to the StreamSink as they are decoded. One decoder per attempt, so a
// retried request never mixes in text from a cut stream.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/llm.hpp"
#include "engine/api/result.hpp"
#include "engine/api/types.hpp"

namespace dsa {

// prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens (or DeepSeek's
// prompt_cache_hit_tokens), completion_tokens_details.reasoning_tokens; missing or null fields are 0.
Usage usage_from_json(const json& usage);

class ChatStreamDecoder {
 public:
  explicit ChatStreamDecoder(StreamSink* sink) : sink_(sink) {}

  // Raw body bytes of a text/event-stream response, in any fragmentation.
  void feed(std::string_view bytes);
  // A whole non-streaming response body.
  Result<void> decode_json(std::string_view body);

  // A finish_reason or [DONE] arrived: the turn is whole even if the connection then drops.
  bool complete() const { return done_ || finish_.has_value(); }
  // The server gave up on the turn for lack of capacity (DeepSeek's finish_reason
  // "insufficient_system_resource"): the text is incomplete, another attempt may succeed.
  bool server_interrupted() const { return server_interrupted_; }
  // The message of an error object the server sent inside the stream (empty when none).
  const std::string& stream_error() const { return stream_error_; }
  // The first chunk that was not valid JSON, as one line (empty when none): text of the turn may
  // be missing, so the turn is asked for again.
  const std::string& malformed_chunk() const { return malformed_chunk_; }

  // The decoded turn. `stopped`: generation was interrupted, so only tool calls known to be whole
  // are kept and finish = stop. Tool calls whose arguments are not a JSON object are kept as sent
  // (the conversation needs their ids) and described in format_error.
  AssistantTurn finish(bool stopped);

 private:
  void on_line(std::string_view line);
  void on_event(const std::string& data);
  void apply_choice(const json& choice, bool whole_message);
  void apply_tool_call(const json& tc, int position);
  void emit_tool_calls_before(size_t n);
  // A server running V3.2 without its tool-call parser passes the DSML block through as content:
  // parsed here into the calls (with its format errors), the text before it kept as content.
  void parse_dsml_content();
  void check_tool_arguments();

  StreamSink* sink_;
  std::string line_buf_;
  std::string event_data_;
  bool done_ = false;
  std::optional<FinishReason> finish_;
  bool server_interrupted_ = false;
  std::string stream_error_;
  std::string malformed_chunk_;
  AssistantTurn turn_;
  std::map<int, size_t> call_slot_;  // server tool-call index -> position in turn_.tool_calls
  size_t n_emitted_ = 0;             // turn_.tool_calls[0..n) were passed to sink->on_tool_call
};

}  // namespace dsa
