// The batch scheduler (see batch_runner.hpp).
#include "cli/batch/batch_runner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "cli/batch/grading.hpp"
#include "cli/batch/results_store.hpp"
#include "cli/batch/sha256.hpp"
#include "context/trajectory.hpp"

namespace dsa::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Counts tool calls by tool name for one attempt.
class CountingListener final : public AgentListener {
 public:
  void on_tool_call(const ToolCall& call) override { ++calls[call.name]; }
  std::map<std::string, int> calls;
};

}  // namespace

std::string task_file_name(const std::string& id) {
  std::string s;
  for (char c : id) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (!s.empty() && s == id && s != "." && s != "..") return s;
  // Changed (or empty, or a directory's name): the id's hash tells it from the ids it now resembles.
  const auto h = sha256(id);
  char tag[10];
  std::snprintf(tag, sizeof tag, "-%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
  return (s.empty() ? "task" : s) + tag;
}

namespace {

struct Attempt {
  RunResult result;
  std::map<std::string, int> tool_calls;
  std::vector<std::string> retrieved;
  std::string error;  // the agent could not be built
};

Attempt run_attempt(const BatchTask& task, const std::string& query, const AgentFactory& agents,
                    const fs::path& trajectory_path) {
  Attempt a;
  auto agent = agents();
  if (!agent) {
    a.error = agent.error().message;
    a.result.status = FinalStatus::error;
    a.result.error = a.error;
    return a;
  }
  AgentLoop& loop = (*agent)->loop();
  CountingListener listener;
  loop.set_listener(&listener);
  std::optional<TrajectoryWriter> traj;
  if (!trajectory_path.empty()) {
    auto t = TrajectoryWriter::create(trajectory_path, TrajectoryInfo{task.id, "0.1.0", "", {}});
    if (t) {
      traj.emplace(std::move(t.value()));
      loop.set_trajectory(&*traj);
    }
  }
  a.result = loop.submit(query);
  loop.set_trajectory(nullptr);
  loop.set_listener(nullptr);
  a.tool_calls = listener.calls;
  a.retrieved = (*agent)->retrieved_docids();
  return a;
}

std::string iso_duration(double s) {
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  }
  return buf;
}

class Progress {
 public:
  Progress(int64_t total, int64_t done, bool enabled) : total_(total), done_(done), enabled_(enabled) {}
  void finished(const json& record) {
    std::lock_guard lock(mu_);
    ++done_;
    ++ran_;
    if (record.contains("correct") && record["correct"].is_boolean()) {
      ++graded_;
      correct_ += record["correct"].get<bool>() ? 1 : 0;
    }
    if (record.contains("usage")) tokens_ += record["usage"].value("completion_tokens", int64_t{0});
    draw();
  }
  void end() {
    if (enabled_) std::fprintf(stderr, "\n");
  }

 private:
  void draw() {
    if (!enabled_) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : width;
    std::string bar(static_cast<size_t>(filled), '=');
    bar.resize(width, ' ');
    const double eta = ran_ > 0 ? s / static_cast<double>(ran_) * static_cast<double>(total_ - done_) : 0;
    char acc[32] = "-";
    if (graded_ > 0) std::snprintf(acc, sizeof acc, "%.1f%%", 100.0 * static_cast<double>(correct_) / static_cast<double>(graded_));
    std::fprintf(stderr, "\r[%s] %lld/%lld  acc %s  %.0f tok/s  ETA %s   ", bar.c_str(), static_cast<long long>(done_),
                 static_cast<long long>(total_), acc, s > 0 ? static_cast<double>(tokens_) / s : 0.0,
                 iso_duration(eta).c_str());
    std::fflush(stderr);
  }
  std::mutex mu_;
  int64_t total_, done_, ran_ = 0, graded_ = 0, correct_ = 0, tokens_ = 0;
  bool enabled_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens}, {"cached_tokens", u.cached_tokens}};
}

// Grades one response; fills correct / judge fields of the record.
void grade(const BatchTask& task, const std::string& response, const BatchConfig& cfg, Llm* grader,
           const prompts::PromptSet& prompts, json& rec) {
  if (!task.answer || cfg.grade == GradeMode::none) return;
  rec["grading"] = cfg.grade == GradeMode::judge ? "judge" : "exact";
  if (cfg.grade == GradeMode::exact) {
    const auto exact = extract_exact_answer(response);
    rec["correct"] = exact.has_value() && answers_match(*exact, *task.answer);
    return;
  }
  std::string err;
  auto prompt = prompts.render("grader", {{"question", task.question}, {"response", response}, {"correct_answer", *task.answer}}, &err);
  if (!prompt) {
    rec["grading_error"] = err;
    return;
  }
  std::vector<Message> msgs(1);
  msgs[0].role = Role::user;
  msgs[0].content = *prompt;
  GenOptions opt;
  opt.thinking = false;
  auto turn = grader->generate(msgs, {}, opt, nullptr);
  if (!turn) {
    rec["grading_error"] = turn.error().message;
    return;
  }
  const JudgeVerdict v = parse_judge_output(turn->content);
  rec["correct"] = v.correct;
  rec["judge"] = {{"found", v.found}, {"confidence", v.confidence}, {"extracted_final_answer", v.extracted_answer},
                  {"output", turn->content}};
  rec["confidence"] = v.confidence;  // calibration uses the judge's reading of the response
}

json run_task(const BatchTask& task, const BatchConfig& cfg, const AgentFactory& agents, Llm* grader,
              const prompts::PromptSet& prompts) {
  const auto t0 = std::chrono::steady_clock::now();
  json rec = {{"id", task.id}, {"strategy", cfg.strategy}};
  if (!task.topic.empty()) rec["topic"] = task.topic;
  std::string err;
  auto query = prompts.render("browsecomp_query", {{"question", task.question}}, &err);
  if (!query) {
    rec["status"] = "error";
    rec["error"] = err;
    return rec;
  }
  std::vector<Attempt> attempts;
  const int n = std::max(1, cfg.parallel_fewest_step);
  for (int i = 0; i < n; ++i) {
    fs::path traj =
        cfg.out_dir / "trajectories" / (task_file_name(task.id) + (n > 1 ? "." + std::to_string(i) : "") + ".json");
    attempts.push_back(run_attempt(task, *query, agents, traj));
    if (cfg.interrupt && cfg.interrupt->load()) break;
  }
  // The answered attempt with the fewest steps; else the first.
  size_t best = 0;
  bool any_answered = false;
  for (size_t i = 0; i < attempts.size(); ++i) {
    const auto& r = attempts[i].result;
    if (r.status != FinalStatus::answered) continue;
    if (!any_answered || r.steps < attempts[best].result.steps) best = i;
    any_answered = true;
  }
  const Attempt& a = attempts[best];
  rec["status"] = final_status_name(a.result.status);
  if (!a.result.error.empty()) rec["error"] = a.result.error;
  rec["response"] = a.result.answer;
  if (auto ex = extract_exact_answer(a.result.answer)) rec["exact_answer"] = *ex;
  if (auto c = extract_confidence(a.result.answer)) rec["stated_confidence"] = *c;
  rec["steps"] = a.result.steps;
  rec["tool_calls"] = a.tool_calls;
  rec["resets"] = a.result.resets;
  rec["usage"] = usage_json(a.result.usage);
  rec["retrieved_docids"] = a.retrieved;
  if (n > 1) {
    json all = json::array();
    for (const auto& at : attempts) all.push_back({{"status", final_status_name(at.result.status)}, {"steps", at.result.steps}});
    rec["attempts"] = all;
    rec["kept_attempt"] = best;
  }
  if (a.result.status == FinalStatus::answered) grade(task, a.result.answer, cfg, grader, prompts, rec);
  // A run that ended without an answer is wrong; one that failed (status "error") is not graded:
  // it runs again on the next resume.
  else if (task.answer && cfg.grade != GradeMode::none && a.result.status != FinalStatus::error)
    rec["correct"] = false;
  if (!rec.contains("confidence")) rec["confidence"] = rec.value("stated_confidence", 100.0);
  rec["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rec;
}

// BrowseComp-Plus's per-query run file.
void write_run_file(const fs::path& dir, const json& rec) {
  json run = {{"query_id", rec["id"]},
              {"tool_call_counts", rec.value("tool_calls", json::object())},
              {"status", rec["status"] == "answered" ? "completed" : rec["status"].get<std::string>()},
              {"retrieved_docids", rec.value("retrieved_docids", json::array())},
              {"result", json::array({{{"type", "output_text"}, {"output", rec.value("response", "")}}})}};
  std::ofstream out(dir / (task_file_name(rec["id"].get<std::string>()) + ".json"));
  out << run.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

json summarize_group(const std::vector<const json*>& recs) {
  std::vector<double> steps, secs, resets, conf;
  std::vector<bool> correct;
  std::map<std::string, double> tools;
  int64_t answered = 0, graded = 0, grading_errors = 0, right = 0, prompt_tok = 0, completion_tok = 0, cached_tok = 0;
  std::map<std::string, int64_t> statuses;
  for (const json* r : recs) {
    ++statuses[r->value("status", "error")];
    if (r->value("status", "") == "answered") ++answered;
    steps.push_back(r->value("steps", 0.0));
    secs.push_back(r->value("seconds", 0.0));
    resets.push_back(r->value("resets", 0.0));
    if (r->contains("tool_calls")) {
      for (auto& [k, v] : (*r)["tool_calls"].items()) tools[k] += v.get<double>();
    }
    if (r->contains("usage")) {
      prompt_tok += (*r)["usage"].value("prompt_tokens", int64_t{0});
      completion_tok += (*r)["usage"].value("completion_tokens", int64_t{0});
      cached_tok += (*r)["usage"].value("cached_tokens", int64_t{0});
    }
    if (r->contains("grading_error") && !r->contains("correct")) ++grading_errors;
    if (r->contains("correct") && (*r)["correct"].is_boolean()) {
      ++graded;
      const bool c = (*r)["correct"].get<bool>();
      right += c ? 1 : 0;
      correct.push_back(c);
      conf.push_back(r->value("confidence", 100.0));
    }
  }
  const double n = static_cast<double>(std::max<size_t>(recs.size(), 1));
  json tools_avg = json::object();
  for (auto& [k, v] : tools) tools_avg[k] = v / n;
  json s = {{"tasks", recs.size()},
            {"answered", answered},
            {"graded", graded},
            {"grading_errors", grading_errors},
            {"correct", right},
            // null when nothing was graded
            {"accuracy", graded > 0 ? json(static_cast<double>(right) / static_cast<double>(graded)) : json()},
            {"calibration_error", calibration_error(conf, correct)},
            {"avg_steps", mean(steps)},
            {"avg_tool_calls", tools_avg},
            {"avg_resets", mean(resets)},
            {"avg_seconds", mean(secs)},
            {"total_prompt_tokens", prompt_tok},
            {"total_completion_tokens", completion_tok},
            {"total_cached_tokens", cached_tok},
            {"statuses", statuses}};
  return s;
}

}  // namespace

bool answers_match(std::string_view a, std::string_view b) {
  auto norm = [](std::string_view s) {
    std::string out;
    bool space = false;
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80 || std::isalnum(c)) {
        if (space && !out.empty()) out += ' ';
        out += static_cast<char>(std::tolower(c));
        space = false;
      } else {
        space = true;
      }
    }
    return out;
  };
  const std::string na = norm(a), nb = norm(b);
  return !nb.empty() && na == nb;
}

json summarize_results(const std::vector<json>& records) {
  std::vector<const json*> all;
  std::map<std::string, std::vector<const json*>> by_strategy;
  for (const auto& r : records) {
    all.push_back(&r);
    by_strategy[r.value("strategy", "")].push_back(&r);
  }
  json s = summarize_group(all);
  json per = json::object();
  for (auto& [k, v] : by_strategy) per[k] = summarize_group(v);
  s["per_strategy"] = per;
  return s;
}

std::string summary_table(const json& s) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-14s %6s %9s %10s %8s %8s %12s %12s\n", "strategy", "tasks", "accuracy", "calib.err",
                "steps", "resets", "tokens in", "tokens out");
  out += line;
  for (auto& [name, g] : s["per_strategy"].items()) {
    char accuracy[16] = "n/a";
    if (g["accuracy"].is_number())
      std::snprintf(accuracy, sizeof accuracy, "%.1f%%", 100.0 * g["accuracy"].get<double>());
    std::snprintf(line, sizeof line, "%-14s %6lld %9s %9.1f%% %8.1f %8.2f %12lld %12lld\n", name.c_str(),
                  g["tasks"].get<long long>(), accuracy, g["calibration_error"].get<double>(),
                  g["avg_steps"].get<double>(), g["avg_resets"].get<double>(),
                  g["total_prompt_tokens"].get<long long>(), g["total_completion_tokens"].get<long long>());
    out += line;
  }
  if (!s["avg_tool_calls"].empty()) {
    out += "tool calls per task:";
    for (auto& [k, v] : s["avg_tool_calls"].items()) {
      std::snprintf(line, sizeof line, " %s %.1f", k.c_str(), v.get<double>());
      out += line;
    }
    out += "\n";
  }
  return out;
}

Result<BatchSummary> run_batch(const std::vector<BatchTask>& tasks, const BatchConfig& cfg, const AgentFactory& agents,
                               Llm* grader, const prompts::PromptSet& prompts) {
  if (cfg.grade == GradeMode::judge && !grader) return make_error("batch: judge grading needs a grader model");
  std::error_code ec;
  fs::create_directories(cfg.out_dir / "trajectories", ec);
  fs::create_directories(cfg.out_dir / "runs", ec);
  if (ec) return make_error(cfg.out_dir.string() + ": " + ec.message());
  DSA_TRY(store, ResultsStore::open(cfg.out_dir / "results.jsonl"));

  // The tasks to run: those without a record, or whose record is an error (the model or the agent
  // failed). And those to grade again: answered before without a grade (the judge failed, or the
  // run did not grade).
  struct Work {
    const BatchTask* task;
    std::optional<json> ungraded;  // the record to grade, instead of running the task
  };
  std::vector<Work> pending;
  BatchSummary summary;
  summary.total = static_cast<int64_t>(tasks.size());
  for (const auto& t : tasks) {
    if (!store->finished(t.id)) {
      pending.push_back({&t, std::nullopt});
      continue;
    }
    ++summary.done_before;
    json rec = *store->record(t.id);
    if (cfg.grade != GradeMode::none && t.answer && rec.value("status", "") == "answered" && !rec.contains("correct"))
      pending.push_back({&t, std::move(rec)});
  }
  Progress progress(summary.total, summary.done_before, cfg.progress);
  std::atomic<size_t> next{0};
  std::atomic<int64_t> ran{0}, regraded{0};
  std::mutex err_mu;
  std::string write_error;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < pending.size();) {
      if (cfg.interrupt && cfg.interrupt->load()) return;
      const Work& work = pending[i];
      json rec;
      if (work.ungraded) {
        rec = *work.ungraded;
        rec.erase("grading_error");
        grade(*work.task, rec.value("response", ""), cfg, grader, prompts, rec);
        ++regraded;
      } else {
        rec = run_task(*work.task, cfg, agents, grader, prompts);
        if (cfg.interrupt && cfg.interrupt->load() && rec.value("status", "") == "interrupted") return;  // rerun later
        write_run_file(cfg.out_dir / "runs", rec);
        ++ran;
      }
      if (auto w = store->append(rec); !w.ok()) {
        std::lock_guard lock(err_mu);
        write_error = w.error().message;
        return;
      }
      if (!work.ungraded) progress.finished(rec);
    }
  };
  const int n_workers = std::clamp<int>(cfg.workers, 1, std::max<int>(1, static_cast<int>(pending.size())));
  std::vector<std::thread> threads;
  for (int w = 1; w < n_workers; ++w) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  progress.end();
  if (!write_error.empty()) return make_error(write_error);

  const auto records = store->records();
  summary.ran = ran.load();
  summary.regraded = regraded.load();
  summary.json = summarize_results(records);
  summary.graded = summary.json["graded"].get<int64_t>();
  summary.correct = summary.json["correct"].get<int64_t>();
  summary.errors = summary.json["statuses"].value("error", int64_t{0});
  summary.grading_errors = summary.json["grading_errors"].get<int64_t>();
  std::ofstream(cfg.out_dir / "summary.json") << summary.json.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  return summary;
}

}  // namespace dsa::cli
