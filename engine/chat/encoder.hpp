// The DeepSeek-V3.2 prompt encoder: a port of DeepSeek's encoding_dsv32.py (model-spec.md 10.1-10.2).
// It renders a conversation into pieces of text, marking which text is markup (may contain special
// tokens) and which is untrusted data; it does not tokenise.
//
// Incremental encoding (what the engine's prefix cache relies on), thinking mode with drop_thinking:
//   * Appending assistant or tool messages never changes the text already rendered: the encoding
//     of messages[0..n) is a byte prefix of the encoding of messages[0..n+k).
//   * Appending a user or developer message changes the previous last user/developer turn: its
//     "<｜Assistant｜><think>" becomes "<｜Assistant｜></think>", and the reasoning of the assistant
//     turns after it is dropped. The two encodings agree exactly up to and including that
//     "<｜Assistant｜>"; stable_prefix_bytes() gives that length.
//   * In chat mode, or with drop_thinking off, the encoding is append-only for every extension.
//   * Anything else (editing or removing a message, other tools, another mode) re-renders from the
//     first byte that differs; nothing here tracks that.
//
// Where this port departs from encoding_dsv32.py, on inputs DeepSeek's code rejects or crashes on:
// an assistant turn after the last user message with neither reasoning nor tool calls renders
// with empty reasoning (DeepSeek asserts); developer messages before the last user turn are kept
// (DeepSeek's drop_thinking_messages drops them and then indexes past the shortened list); tools
// given with no system message get one created at the front. Tool schemas are dumped as
// {"name", "description", "parameters"} (the ToolSpec fields), so keys beyond those are not shown.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/api/types.hpp"

namespace dsa {

// Template text may contain special tokens (BOS, <｜User｜>, <think>, ｜DSML｜ ...). Non-template
// text (message contents, reasoning, tool results, names, argument values, schemas) is untrusted
// and must be tokenised with special tokens disabled, so nothing in it can forge the markup.
// encode_messages never returns empty pieces, and never two adjacent pieces of the same kind.
struct PromptPiece {
  std::string text;
  bool is_template;
  bool operator==(const PromptPiece&) const = default;
};

struct EncodeOptions {
  bool thinking = true;       // "thinking" mode (else "chat")
  // Drop the reasoning of assistant turns before the last user/developer message, as DeepSeek's
  // encoder does. Off: every turn stays rendered as it was while it was the current one (its
  // "<think>" and reasoning kept), so the prompt is append-only across user turns too.
  bool drop_thinking = true;
  bool add_bos = true;
};

// Problems that make a conversation impossible to encode, as one line naming the message:
// a tool message with no assistant tool call to answer, more tool results than calls, tool-call
// arguments that are not a JSON object.
Result<void> check_conversation(std::span<const Message> messages);

// Precondition: check_conversation(messages) succeeds (checked; callers holding messages from a
// file or a client check first). `tools` are attached to the first system message; one with empty
// content is created at the front when there is none (as vLLM and SGLang do). When the last message
// is a user/developer or the last tool result, the text ends with the generation prompt exactly
// as DeepSeek's encoder leaves it ("<｜Assistant｜><think>", "\n\n</think>", ...).
std::vector<PromptPiece> encode_messages(std::span<const Message> messages, std::span<const ToolSpec> tools,
                                         const EncodeOptions& opt);

std::string join_text(std::span<const PromptPiece> pieces);

// Length in bytes of the part of join_text(encode_messages(messages, tools, opt)) that the encoding
// of every extension of `messages` starts with: the whole text when the encoding is append-only
// (chat mode, drop_thinking off, or no user/developer message yet), else the text up to and
// including the "<｜Assistant｜>" of the last user/developer message.
size_t stable_prefix_bytes(std::span<const Message> messages, std::span<const ToolSpec> tools,
                           const EncodeOptions& opt);

}  // namespace dsa
