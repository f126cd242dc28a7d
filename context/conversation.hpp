// The conversation of one agent session: every message in order (system, user/developer,
// assistant turns with reasoning and tool calls, tool results), with the rounds identified and the
// thinking-retention rule applied when building the next request. Save/load as JSON for resuming.
//
// It is not the prompt: the chat encoding (local) or the request body (remote) is the Llm's job;
// this class only decides which messages, and which reasoning, the next request carries.
//
// Invariants: messages are only appended by the loop; the context strategies (budget.hpp) remove
// whole rounds, earlier summaries and notes, never the system prompt or user/developer messages.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/api/types.hpp"

namespace dsa {

// Why a message is in the conversation. Messages the context module inserts (a summary to resume
// from, a note that history was dropped) are replaced, not kept, when the next strategy applies.
enum class Origin { conversation, summary, note };

const char* origin_name(Origin o);

// One round: an assistant message with tool calls, plus the tool messages that follow it
// (normally one per call). Indices into Conversation::messages(), half-open [begin, end).
struct Round {
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
};

class Conversation {
 public:
  Conversation() = default;

  // Appends any message (origin: conversation).
  void append(Message m);
  void append_system(std::string content);
  void append_user(std::string content);
  // Appends the model's turn: content, reasoning (nullopt when the turn had none) and tool calls.
  void append_assistant(const AssistantTurn& turn);
  // Appends the result of tool call `call_id`.
  void append_tool_result(std::string call_id, std::string content);
  // Appends a message the context module made (summary, note). Also used when loading.
  void append(Message m, Origin origin);

  const std::vector<Message>& messages() const { return messages_; }
  Origin origin(size_t index) const { return origins_[index]; }
  size_t size() const { return messages_.size(); }
  bool empty() const { return messages_.empty(); }

  // The rounds in order. An assistant message with tool calls starts a round; the tool messages
  // directly after it belong to it. (A trailing round may still lack some results.)
  std::vector<Round> rounds() const;

  // Index of the last user or developer message, or size() when there is none.
  size_t last_user_index() const;

  // The exact messages the next request carries, in the same order and at the same indices as
  // messages() (only reasoning is removed, never a message):
  //   thinking on:  assistant turns before the last user/developer message lose their reasoning;
  //                 those after it keep it (so reasoning survives tool results inside one user
  //                 turn); tool calls and tool results are always kept.
  //   thinking off: no assistant turn carries reasoning.
  // Dropped reasoning is reset to nullopt (the remote backend itself sends "" where the API needs
  // a value).
  std::vector<Message> messages_for_model(bool thinking) const;

  // Removes the messages at the given indices (sorted or not, duplicates ignored). Used by the
  // strategies; removing a system or user/developer message of origin `conversation` is an
  // invariant break (checked).
  void remove(std::vector<size_t> indices);

  // Removes the last message: the user's message that the context window cannot take, before any
  // reply to it (a chat then goes on from the conversation before it).
  void drop_last();

  // Inserts a message at `index` (0..size()).
  void insert(size_t index, Message m, Origin origin);

  // JSON: {"messages": [OpenAI-shaped message + "origin" when not "conversation"]}.
  json to_json() const;
  static Result<Conversation> from_json(const json& j);
  // Atomic save (temp file + rename) and load; errors name the file.
  Result<void> save(const std::filesystem::path& path) const;
  static Result<Conversation> load(const std::filesystem::path& path);

 private:
  std::vector<Message> messages_;
  std::vector<Origin> origins_;  // parallel to messages_
};

}  // namespace dsa
