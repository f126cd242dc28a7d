// The batch scheduler of `dsagent batch` (agent-spec section 6): tasks run on `workers` threads,
// each task in a fresh agent (its own tools and browsing state, the shared model), optionally N
// times with the fewest-step answered attempt kept (parallel-fewest-step); the answer is graded by
// a judge model or by exact match; every finished task is one flushed line of results.jsonl, so a
// killed run loses nothing and a rerun resumes; per-task trajectories and BrowseComp-Plus run
// files; a summary with accuracy, calibration error, steps, tool calls, tokens, resets and wall
// time per context strategy.
#pragma once
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/agent/loop.hpp"
#include "cli/batch/dataset.hpp"
#include "engine/api/llm.hpp"
#include "prompts/render.hpp"

namespace dsa::cli {

// One attempt's agent: the loop and whatever it borrows (tools, browser), owned together.
struct TaskAgent {
  virtual ~TaskAgent() = default;
  virtual AgentLoop& loop() = 0;
  // Documents the attempt opened (BrowseComp-Plus's retrieved_docids); empty when unknown.
  virtual std::vector<std::string> retrieved_docids() const { return {}; }
};
using AgentFactory = std::function<Result<std::unique_ptr<TaskAgent>>()>;

enum class GradeMode {
  judge,  // the grader prompt to a grader model; needs `grader`
  exact,  // the response's "Exact Answer" equals the answer after normalising case, spaces, punctuation
  none,   // not graded
};

struct BatchConfig {
  std::filesystem::path out_dir;
  int workers = 1;
  int parallel_fewest_step = 1;  // attempts per task; the answered one with the fewest steps is kept
  GradeMode grade = GradeMode::exact;
  std::string strategy = "discard-all";  // the context strategy of this run (summary rows group by it)
  bool progress = true;                  // a progress line on stderr
  const std::atomic<bool>* interrupt = nullptr;  // stop taking new tasks when set
};

struct BatchSummary {
  int64_t total = 0, done_before = 0, ran = 0, graded = 0, correct = 0;
  int64_t regraded = 0;        // records of earlier runs graded in this one
  int64_t errors = 0;          // tasks whose record is an error (a rerun runs them again)
  int64_t grading_errors = 0;  // answered tasks the grader failed on (a rerun grades them)
  nlohmann::json json;  // what summary.json holds
};

// Runs the tasks that results.jsonl in out_dir does not hold yet, or holds as an error, and grades
// the answered ones it holds without a grade. `grader` (judge mode) and `agents` may be called
// from several threads at once: the caller makes them thread-safe.
Result<BatchSummary> run_batch(const std::vector<BatchTask>& tasks, const BatchConfig& config,
                               const AgentFactory& agents, Llm* grader, const prompts::PromptSet& prompts);

// The file name of a task's trajectory and run file: the id where it is one (letters, digits, '-',
// '_', '.'), else the id with the other characters as '_' and a hash of the id after it, so two
// ids never share a file ("a/b" and "a_b").
std::string task_file_name(const std::string& id);

// Summary over result records (results.jsonl lines): accuracy, calibration error, averages, per
// strategy. Used at the end of a run and for a finished out dir.
nlohmann::json summarize_results(const std::vector<nlohmann::json>& records);
// The human table of a summary.
std::string summary_table(const nlohmann::json& summary);

// Normalised comparison of exact mode: lower case, punctuation and extra spaces removed.
bool answers_match(std::string_view response_answer, std::string_view correct_answer);

}  // namespace dsa::cli
