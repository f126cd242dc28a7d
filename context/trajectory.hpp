// The trajectory writer: Harbor's Agent Trajectory Interchange Format (ATIF v1.4), the file the
// `--trajectory` flag names. The whole document is rewritten atomically (temp file + rename) after
// every change, so a killed run leaves the last complete step on disk and never a torn file.
//
// Layout written:
//   {"schema_version": "ATIF-v1.4", "session_id", "agent": {"name": "dsagent", "version",
//    "model_name"},
//    "steps": [{"step_id" (1, 2, ...), "timestamp" (ISO 8601 UTC), "source": "system"|"user"|"agent",
//               "message", ["model_name"], ["reasoning_content"],
//               ["tool_calls": [{"tool_call_id", "function_name", "arguments" (object)}]],
//               ["observation": {"results": [{"source_call_id", "content"}]}],
//               ["metrics": {"prompt_tokens", "completion_tokens", "cached_tokens"}],
//               ["extra": {...}]}],
//    "final_metrics": {"total_prompt_tokens", "total_completion_tokens", "total_cached_tokens",
//                      "total_steps"},
//    "extra": {"context_management": [ContextRecord + "after_step"], "final_state": {"status",
//              ["error"], ...}}}
// Tool-call arguments are written as the JSON object the model produced; arguments that do not
// parse as an object are written as the raw string.
//
// Secrets: every string written (messages, reasoning, arguments, results, records) has each
// listed secret replaced by "[redacted]" before it is stored, so no secret reaches the file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "context/budget.hpp"
#include "engine/api/result.hpp"
#include "engine/api/types.hpp"

namespace dsa {

struct TrajectoryInfo {
  std::string session_id;
  std::string agent_version;
  std::string model_name;
  std::vector<std::string> secrets;  // replaced by "[redacted]" everywhere (empty strings ignored)
};

// One tool result of an agent step.
struct ObservationResult {
  std::string source_call_id;
  std::string content;
};

class TrajectoryWriter {
 public:
  // Creates (or replaces) the file with an empty step list. Error: the file cannot be written.
  static Result<TrajectoryWriter> create(const std::filesystem::path& path, TrajectoryInfo info);

  // Each add_* appends one step, rewrites the file, and returns the step_id.
  Result<int> add_system(const std::string& message);
  Result<int> add_user(const std::string& message);
  // An agent step from the model's turn (message = content, reasoning, tool calls, usage as metrics).
  Result<int> add_agent(const AssistantTurn& turn);
  // Attaches the tool results to the last agent step (appending to results already there) and
  // rewrites the file. Error (invariant of the caller): no agent step yet.
  Result<void> add_observation(const std::vector<ObservationResult>& results);
  // Adds extra fields to the last step's "extra" (e.g. tool durations, a format error).
  Result<void> add_step_extra(const std::string& key, const json& value);

  // Appends a context-management record to extra.context_management, with "after_step" = the
  // last step_id (0 before any step).
  Result<void> add_context_record(const ContextRecord& record);

  // Sets extra.final_state = {"status": status, ["error": error], plus `details` fields}
  // (answered | max_steps | max_resets | context_exhausted | timeout | error) and writes.
  Result<void> finish(const std::string& status, const std::string& error = "", const json& details = json::object());

  const json& document() const { return doc_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  TrajectoryWriter(std::filesystem::path path, std::vector<std::string> secrets);
  json& new_step(const char* source, const std::string& message);
  json* last_agent_step();
  Result<int> written(int step_id);  // writes the file, then gives step_id
  std::string redact(std::string s) const;
  json redact(json j) const;
  Result<void> write();

  std::filesystem::path path_;
  std::vector<std::string> secrets_;
  json doc_;
};

}  // namespace dsa
