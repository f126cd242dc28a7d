// The vocabulary every module shares: messages, tool calls and specs, assistant turns, usage,
// generation options. Plain data; JSON conversion lives beside each type.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dsa {

// Key order matters: tool schemas are rendered into the prompt in the order given.
using json = nlohmann::ordered_json;

enum class Role { system, user, developer, assistant, tool };

const char* role_name(Role r);
std::optional<Role> parse_role(std::string_view s);

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON object as text, exactly as the model (or API) produced it
};

struct Message {
  Role role = Role::user;
  std::string content;
  std::optional<std::string> reasoning_content;  // assistant only
  std::vector<ToolCall> tool_calls;              // assistant only
  std::string tool_call_id;                      // tool only (ignored by the V3.2 encoder; positional)
  std::optional<json> response_format;           // system/developer: a JSON schema to answer in
};

// A tool as shown to the model: OpenAI's {"type":"function","function":{name, description, parameters}}.
struct ToolSpec {
  std::string name;
  std::string description;
  json parameters = json::object();  // JSON Schema of the arguments object
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;     // prompt tokens served from the prefix cache
  int64_t reasoning_tokens = 0;  // part of completion_tokens
};

enum class FinishReason { stop, length, tool_calls, error };

// A problem with the model's output format (unclosed tag, unknown parameter encoding, ...).
// The agent loop turns it into an observation for the model.
struct FormatError {
  std::string message;
};

struct AssistantTurn {
  std::string reasoning;   // empty when none
  std::string content;
  std::vector<ToolCall> tool_calls;
  Usage usage;
  FinishReason finish = FinishReason::stop;
  std::optional<FormatError> format_error;
  std::string raw_text;    // the generated text as decoded (local engine), for debugging/trajectories
};

struct GenOptions {
  bool thinking = true;
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  int top_k = 0;             // 0 = off
  uint64_t seed = 0;
  int64_t max_tokens = 4096;
  std::vector<std::string> stop;
};

// --- JSON (OpenAI chat-completions shapes) ---
json to_json(const ToolCall& c);    // {"id","type":"function","function":{"name","arguments"}}
json to_json(const Message& m);     // {"role","content",["reasoning_content"],["tool_calls"],["tool_call_id"]}
json to_json(const ToolSpec& t);    // {"type":"function","function":{...}}
json to_json(const Usage& u);
// Parsing accepts OpenAI's shapes, including arguments given as an object instead of a string.
std::optional<ToolCall> tool_call_from_json(const json& j, std::string* err);
std::optional<Message> message_from_json(const json& j, std::string* err);
std::optional<ToolSpec> tool_spec_from_json(const json& j, std::string* err);

}  // namespace dsa

#include "engine/api/types_json.hpp"
