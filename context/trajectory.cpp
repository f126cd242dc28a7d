// The ATIF trajectory writer (see trajectory.hpp).
#include "context/trajectory.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "context/atomic_file.hpp"

namespace dsa {

namespace {

constexpr const char* kSchemaVersion = "ATIF-v1.4";
constexpr const char* kRedacted = "[redacted]";

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

json arguments_json(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return text;
  return j;
}

}  // namespace

TrajectoryWriter::TrajectoryWriter(std::filesystem::path path, std::vector<std::string> secrets)
    : path_(std::move(path)), secrets_(std::move(secrets)) {
  std::erase_if(secrets_, [](const std::string& s) { return s.empty(); });
}

Result<TrajectoryWriter> TrajectoryWriter::create(const std::filesystem::path& path, TrajectoryInfo info) {
  TrajectoryWriter w(path, std::move(info.secrets));
  w.doc_ = json{
      {"schema_version", kSchemaVersion},
      {"session_id", w.redact(info.session_id)},
      {"agent", {{"name", "dsagent"}, {"version", info.agent_version}, {"model_name", w.redact(info.model_name)}}},
      {"steps", json::array()},
      {"final_metrics",
       {{"total_prompt_tokens", 0}, {"total_completion_tokens", 0}, {"total_cached_tokens", 0}, {"total_steps", 0}}},
      {"extra", {{"context_management", json::array()}}}};
  auto ok = w.write();
  if (!ok) return ok.error();
  return w;
}

std::string TrajectoryWriter::redact(std::string s) const {
  for (const std::string& secret : secrets_) {
    for (size_t at = s.find(secret); at != std::string::npos; at = s.find(secret, at + std::strlen(kRedacted)))
      s.replace(at, secret.size(), kRedacted);
  }
  return s;
}

json TrajectoryWriter::redact(json j) const {
  if (secrets_.empty()) return j;
  if (j.is_string()) return redact(j.get<std::string>());
  if (j.is_array() || j.is_object()) {
    for (auto& v : j) v = redact(std::move(v));
  }
  // Object keys are not redacted: they are field names, or argument names the model chose.
  return j;
}

json& TrajectoryWriter::new_step(const char* source, const std::string& message) {
  json& steps = doc_["steps"];
  steps.push_back(json{{"step_id", static_cast<int>(steps.size()) + 1},
                       {"timestamp", utc_timestamp()},
                       {"source", source},
                       {"message", redact(message)}});
  doc_["final_metrics"]["total_steps"] = steps.size();
  return steps.back();
}

Result<int> TrajectoryWriter::written(int step_id) {
  auto ok = write();
  if (!ok) return ok.error();
  return step_id;
}

Result<int> TrajectoryWriter::add_system(const std::string& message) {
  return written(new_step("system", message)["step_id"].get<int>());
}

Result<int> TrajectoryWriter::add_user(const std::string& message) {
  return written(new_step("user", message)["step_id"].get<int>());
}

Result<int> TrajectoryWriter::add_agent(const AssistantTurn& turn) {
  json& step = new_step("agent", turn.content);
  const int step_id = step["step_id"].get<int>();
  const std::string model_name = doc_["agent"]["model_name"].get<std::string>();
  if (!model_name.empty()) step["model_name"] = model_name;
  if (!turn.reasoning.empty()) step["reasoning_content"] = redact(turn.reasoning);
  if (!turn.tool_calls.empty()) {
    json calls = json::array();
    for (const ToolCall& c : turn.tool_calls)
      calls.push_back(
          json{{"tool_call_id", c.id}, {"function_name", c.name}, {"arguments", redact(arguments_json(c.arguments))}});
    step["tool_calls"] = std::move(calls);
  }
  step["metrics"] = json{{"prompt_tokens", turn.usage.prompt_tokens},
                         {"completion_tokens", turn.usage.completion_tokens},
                         {"cached_tokens", turn.usage.cached_tokens}};
  json& totals = doc_["final_metrics"];
  totals["total_prompt_tokens"] = totals["total_prompt_tokens"].get<int64_t>() + turn.usage.prompt_tokens;
  totals["total_completion_tokens"] = totals["total_completion_tokens"].get<int64_t>() + turn.usage.completion_tokens;
  totals["total_cached_tokens"] = totals["total_cached_tokens"].get<int64_t>() + turn.usage.cached_tokens;
  return written(step_id);
}

json* TrajectoryWriter::last_agent_step() {
  json& steps = doc_["steps"];
  for (auto it = steps.rbegin(); it != steps.rend(); ++it)
    if ((*it)["source"] == "agent") return &*it;
  return nullptr;
}

Result<void> TrajectoryWriter::add_observation(const std::vector<ObservationResult>& results) {
  json* step = last_agent_step();
  if (!step) return make_error("trajectory '" + path_.string() + "': an observation needs an agent step first");
  json& list = (*step)["observation"]["results"];
  if (!list.is_array()) list = json::array();
  for (const ObservationResult& r : results)
    list.push_back(json{{"source_call_id", r.source_call_id}, {"content", redact(r.content)}});
  return write();
}

Result<void> TrajectoryWriter::add_step_extra(const std::string& key, const json& value) {
  json& steps = doc_["steps"];
  if (steps.empty()) return make_error("trajectory '" + path_.string() + "': no step to add '" + key + "' to");
  steps.back()["extra"][key] = redact(value);
  return write();
}

Result<void> TrajectoryWriter::add_context_record(const ContextRecord& record) {
  json j = redact(to_json(record));
  j["after_step"] = doc_["steps"].size();
  doc_["extra"]["context_management"].push_back(std::move(j));
  return write();
}

Result<void> TrajectoryWriter::finish(const std::string& status, const std::string& error, const json& details) {
  json state{{"status", status}};
  if (!error.empty()) state["error"] = redact(error);
  if (details.is_object())
    for (auto it = details.begin(); it != details.end(); ++it) state[it.key()] = redact(it.value());
  doc_["extra"]["final_state"] = std::move(state);
  return write();
}

// Model text can hold invalid UTF-8 (a byte-level model may emit any bytes); it is written with
// U+FFFD in place of the invalid parts rather than losing the file.
Result<void> TrajectoryWriter::write() { return write_file_atomic(path_, doc_.dump(2, ' ', false, json::error_handler_t::replace) + "\n"); }

}  // namespace dsa
