// `dsagent batch INPUT.csv|INPUT.jsonl --out DIR` (cli.md, agent-spec section 6): BrowseComp-style
// evaluation over many tasks, concurrent, resumable and graded. See cli/batch/batch_runner.hpp.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

#include "cli/agent/backend.hpp"
#include "cli/agent/corpus_cache.hpp"
#include "cli/agent/session.hpp"
#include "cli/batch/batch_runner.hpp"
#include "cli/batch/dataset.hpp"
#include "cli/commands.hpp"
#include "engine/remote/remote_llm.hpp"
#include "tools/browse/browser.hpp"
#include "tools/browse/corpus.hpp"

namespace dsa::cli {

namespace {

struct BatchArgs {
  AgentOptions agent;
  std::string input, out, grade, grader_api, grader_model, grader_model_dir, grader_key_env;
  int workers = 1, parallel_fewest_step = 1;
};

// One task's agent: its own tools and browsing state over the shared model and corpus.
class SearchAgent final : public TaskAgent {
 public:
  AgentLoop& loop() override { return *loop_; }
  std::vector<std::string> retrieved_docids() const override {
    return browser_ ? browser_->retrieved() : std::vector<std::string>{};
  }
  ToolRegistry tools_;
  std::shared_ptr<Browser> browser_;
  std::unique_ptr<AgentLoop> loop_;
};

int run(CLI::App& cmd, BatchArgs& a) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "dsagent batch: %s\n", msg.c_str());
    return 1;
  };
  if (auto ok = finish_agent_options(cmd, a.agent); !ok) return fail(ok.error().message);
  // Counted after the config files: a config's or the model's "tools" counts as asked for.
  const bool tools_given = cmd.count("--tools") > 0;
  if (!tools_given) a.agent.tools = "none";  // a search run gets only the browsing tools unless asked
  // With a corpus the batch builds the browse tools itself, to record each task's documents: they
  // stand where "browse" stands in the tool list, so the prompt lists the tools in the order `run`
  // gives them, and come first when the list does not name them.
  bool browse_listed = false;
  {
    std::stringstream ss(a.agent.tools);
    for (std::string t; std::getline(ss, t, ',');) browse_listed = browse_listed || t == "browse";
  }
  if (a.agent.corpus.empty() && !tools_given && (!a.agent.searxng.empty() || !a.agent.web_search.is_null()))
    a.agent.tools = "browse";

  auto tasks = load_batch_tasks(a.input);
  if (!tasks) return fail(tasks.error().message);
  auto llm = make_llm(a.agent, a.workers);
  if (!llm) return fail(llm.error().message);
  Llm* model = llm->get();  // thread-safe: the local engine batches the workers' requests into shared steps

  std::shared_ptr<const Corpus> corpus;
  if (!a.agent.corpus.empty()) {
    auto c = open_corpus(a.agent.corpus);
    if (!c) return fail(c.error().message);
    corpus = std::move(c.value());
  }
  BrowseToolSet set = BrowseToolSet::deepseek;
  if (a.agent.browse_tools == "browsecomp-plus") set = BrowseToolSet::browsecomp_plus;

  prompts::PromptSet prompts;
  if (!a.agent.prompts_dir.empty()) {
    std::string err;
    auto p = prompts::PromptSet::with_overrides(a.agent.prompts_dir, &err);
    if (!p) return fail("--prompts-dir: " + err);
    prompts = std::move(*p);
  }
  auto policy = make_context_policy(a.agent, model->info());
  if (!policy) return fail(policy.error().message);
  auto tool_ctx = make_tool_context(a.agent);
  if (!tool_ctx) return fail(tool_ctx.error().message);
  std::string err;
  auto system = prompts.render("system_search", {}, &err);
  if (!system) return fail(err);
  const LoopLimits limits{.max_steps = a.agent.max_steps,
                          .max_total_tokens = a.agent.max_total_tokens,
                          .time_limit_s = a.agent.time_limit_s,
                          .max_format_errors = a.agent.max_format_errors};
  const GenOptions gen = make_gen_options(a.agent);

  // Check the tool selection once, so a bad --tools fails before any task runs, and show its
  // warnings (a skipped MCP server) once rather than for every task.
  {
    ToolRegistry probe;
    auto warnings = add_selected_tools(probe, a.agent, corpus ? BrowseAdder([](ToolRegistry&) {}) : BrowseAdder());
    if (!warnings) return fail(warnings.error().message);
    for (const std::string& w : *warnings) std::fprintf(stderr, "dsagent batch: warning: %s\n", w.c_str());
  }
  AgentFactory factory = [&]() -> Result<std::unique_ptr<TaskAgent>> {
    auto agent = std::make_unique<SearchAgent>();
    BrowseAdder browse;
    if (corpus) {
      agent->browser_ = std::make_shared<Browser>(make_corpus_backend(corpus));
      browse = [&agent, set](ToolRegistry& r) { add_browse_tools(r, agent->browser_, set); };
      if (!browse_listed) browse(agent->tools_);
    }
    // Its warnings are the probe's, shown already.
    if (auto ok = add_selected_tools(agent->tools_, a.agent, browse); !ok) return ok.error();
    agent->loop_ = std::make_unique<AgentLoop>(*model, agent->tools_, *policy, limits, prompts, *tool_ctx, gen);
    agent->loop_->conversation().append_system(*system);
    return std::unique_ptr<TaskAgent>(std::move(agent));
  };

  // Grader: a second server, or the same backend.
  std::unique_ptr<Llm> grader_owned;
  Llm* grader = nullptr;
  GradeMode mode = GradeMode::exact;
  if (!a.grader_api.empty()) {
    RemoteConfig rc;
    rc.base_url = a.grader_api;
    rc.model = a.grader_model;
    rc.api_key_env = a.grader_key_env;
    auto g = RemoteLlm::create(rc);
    if (!g) return fail("--grader-api: " + g.error().message);
    grader_owned = std::move(g.value());
    grader = grader_owned.get();
    mode = GradeMode::judge;
  } else if (!a.grader_model_dir.empty()) {
    auto g = make_local_llm(a.grader_model_dir, 32768, attention_mode(a.agent));
    if (!g) return fail("--grader-model-dir: " + g.error().message);
    grader_owned = std::move(g.value());
    grader = grader_owned.get();
    mode = GradeMode::judge;
  }
  if (a.grade == "judge") {
    if (!grader) grader = model;  // the agent's own model judges
    mode = GradeMode::judge;
  } else if (a.grade == "exact") {
    mode = GradeMode::exact;
  } else if (a.grade == "none") {
    mode = GradeMode::none;
  }

  BatchConfig cfg;
  cfg.out_dir = a.out;
  cfg.workers = a.workers;
  cfg.parallel_fewest_step = a.parallel_fewest_step;
  cfg.grade = mode;
  cfg.strategy = a.agent.context_strategy;
  cfg.interrupt = &install_interrupt_handler();
  std::fprintf(stderr, "dsagent batch: %zu tasks, %d workers, grading: %s\n", tasks->size(), a.workers,
               mode == GradeMode::judge ? "judge model" : mode == GradeMode::exact ? "exact match" : "none");
  auto summary = run_batch(*tasks, cfg, factory, grader, prompts);
  if (!summary) return fail(summary.error().message);
  std::printf("%s", summary_table(summary->json).c_str());
  std::printf("results: %s/results.jsonl (%lld run now, %lld from before%s); summary: %s/summary.json\n", a.out.c_str(),
              static_cast<long long>(summary->ran), static_cast<long long>(summary->done_before),
              summary->regraded ? (", " + std::to_string(summary->regraded) + " graded again").c_str() : "",
              a.out.c_str());
  if (cfg.interrupt->load()) return 130;
  if (summary->errors > 0 || summary->grading_errors > 0) {
    // Not a finished evaluation: the accuracy above leaves the failed tasks out until a rerun.
    std::fprintf(stderr,
                 "dsagent batch: %lld task(s) ended with an error and %lld could not be graded; run the same "
                 "command again to retry them\n",
                 static_cast<long long>(summary->errors), static_cast<long long>(summary->grading_errors));
    return 1;
  }
  return 0;
}

}  // namespace

void add_batch_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BatchArgs>();
  auto* cmd = app.add_subcommand("batch", "BrowseComp-style batch run: concurrent, resumable, graded");
  cmd->footer(
      "Inputs: BrowseComp's encrypted CSV (problem, answer, canary), BrowseComp-Plus query JSONL, or JSONL\n"
      "{id, question, answer?}. Every finished task is appended to OUT/results.jsonl; rerunning the same\n"
      "command skips finished ids, runs again the tasks that ended with an error (the server failed) and\n"
      "grades the answers the judge failed on (exit status 1 while any are left).\n"
      "OUT/summary.json and a table hold accuracy, calibration error, steps,\n"
      "tool calls, tokens and context resets per strategy; OUT/trajectories/ and OUT/runs/ (BrowseComp-Plus\n"
      "run files) hold each task.\n\n"
      "Examples:\n"
      "  dsagent index examples/browse-eval/corpus.jsonl --out corpus.db\n"
      "  dsagent batch examples/browse-eval/questions.csv --out runs/eval --corpus corpus.db \\\n"
      "      --api https://api.deepseek.com --api-model deepseek-reasoner --workers 8 --grade judge");
  cmd->add_option("input", args->input, "tasks: .csv (BrowseComp) or .jsonl")->required();
  cmd->add_option("--out,-o", args->out, "output directory (results.jsonl, summary.json, trajectories)")->required();
  cmd->add_option("--workers", args->workers, "concurrent tasks")->check(CLI::Range(1, 256));
  cmd->add_option("--parallel-fewest-step", args->parallel_fewest_step,
                  "attempts per task; keeps the answered one with the fewest steps")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--grade", args->grade, "judge, exact or none (default: judge with a grader, else exact)")
      ->check(CLI::IsMember({"judge", "exact", "none"}));
  cmd->add_option("--grader-api", args->grader_api, "OpenAI-compatible server of the judge model");
  cmd->add_option("--grader-model", args->grader_model, "judge model name on --grader-api");
  cmd->add_option("--grader-api-key-env", args->grader_key_env, "environment variable of the judge's API key");
  cmd->add_option("--grader-model-dir", args->grader_model_dir, "judge model checkpoint for the local engine");
  add_agent_flags(*cmd, args->agent);
  cmd->callback([cmd, args, &exit_code] { exit_code = run(*cmd, *args); });
}

}  // namespace dsa::cli
