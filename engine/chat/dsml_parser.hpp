// Parser for what a DeepSeek-V3.2 model generates after the prompt: reasoning, content and DSML
// tool calls (model-spec.md 10.3). Streaming: text can be fed in any chunking, each piece of
// reasoning and content and each complete tool call is reported to the StreamSink as soon as it
// is certain; text that might be the start of a marker ("<｜DS", "\n\n") is held back until it is
// known, so no partial markup ever reaches the content.
//
// Tolerant where DeepSeek's reference parser asserts: nothing in the text can crash it. Every
// deviation from the canonical format is described in AssistantTurn::format_error (one message,
// written to be shown to the model), and the parser keeps what it can:
//   * thinking mode without "</think>": all text is reasoning (as vLLM's reasoning parsers do); a
//     tool-call block before "</think>" ends the reasoning and is parsed.
//   * a parameter not closed before the next parameter, "</｜DSML｜invoke>" or the end of the block
//     keeps the value read so far; an invoke not closed before "</｜DSML｜function_calls>" is kept.
//   * a tool call cut off by the end of the text (or EOS) is dropped, never half-executed.
//   * string="false" values that are not valid JSON are passed as strings; a string attribute
//     other than "true"/"false", unknown attributes and duplicate parameters are reported.
//   * text after the tool-call block, or after EOS, is ignored and reported.
//   * special tokens (BOS, <think>, </think>, ｜DSML｜) inside reasoning or content are kept and reported.
// Tool-call arguments are a JSON object text as DeepSeek's parser builds it ({"k": v, ...});
// tool calls get ids "call_0", "call_1", ... in order within the turn.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/llm.hpp"
#include "engine/api/types.hpp"

namespace dsa {

class DsmlStreamParser {
 public:
  explicit DsmlStreamParser(bool thinking /* the prompt ended with <think> */);
  // Text decoded so far, in any chunking (chunks may split markers and UTF-8 characters).
  void feed(std::string_view text, StreamSink* sink);
  // Ends the text: text held back as a possible marker start is flushed to the sink of the last
  // feed() call (and errors are resolved: an unfinished marker is text after all). finish: tool_calls when calls were parsed, else stop when EOS was hit (hit_eos,
  // or the EOS marker is in the text), else length. raw_text is the whole text.
  AssistantTurn finish(bool hit_eos);

 private:
  enum class State { reasoning, content, block, invoke_head, invoke_body, param_head, param_value, after_block, done };
  struct Param {
    std::string name;
    std::string string_attr;  // "true", "false", or what the model wrote instead
    std::string value;
  };

  std::span<const std::string_view> markers() const;
  void advance(bool at_end);
  void emit_text(std::string_view text);
  void check_gap(std::string_view gap, std::string_view where);
  void start_call(std::string_view head);
  void start_param(std::string_view head);
  void add_param(std::string_view value);
  void complete_call();
  void drop_call();
  void error(std::string message);

  State state_;
  StreamSink* sink_ = nullptr;  // of the last feed()
  std::string buf_;
  size_t pos_ = 0;            // where to look for markers next: none starts in [segment_start_, pos_)
  size_t segment_start_ = 0;  // start of the text not yet consumed (or, when streaming, not yet emitted)
  bool first_gap_ = true;     // the first text in the block closes "<｜DSML｜function_calls" with ">"
  bool saw_eos_ = false;
  bool call_valid_ = false;
  std::string call_name_;
  std::vector<Param> params_;
  Param param_;
  AssistantTurn turn_;
  std::vector<std::string> errors_;
};

// The whole-text parse: equal to feeding `text` in any chunking and calling finish(hit_eos) with
// hit_eos = whether `text` contains the EOS marker.
AssistantTurn parse_completion(std::string_view text, bool thinking);

}  // namespace dsa
