// `dsagent plan [DIR | config.json]`: the memory each GPU needs to serve a model before anything is
// loaded (engine/model/memory_plan.hpp): weights under the tensor- and expert-parallel layout, KV
// and indexer caches for the context and sequences asked for, a workspace estimate; with
// --gpu-memory, whether it fits and how many such sequences would. Only config.json is read, so a
// checkpoint can be planned before it is downloaded; without a path, DeepSeek-V3.2's published
// config.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/flag_ranges.hpp"
#include "cli/units.hpp"
#include "engine/model/config.hpp"
#include "engine/model/forward_checks.hpp"
#include "engine/model/memory_plan.hpp"

namespace dsa::cli {

namespace {

struct PlanArgs {
  std::string path;
  int gpus = 8;
  double gpu_memory_gib = 0.0;
  int64_t context = 131072;
  int64_t sequences = 1;
  int64_t prefill_chunk = 4096;
  bool bf16_cache = false;
  bool json = false;
};

int run_plan(const PlanArgs& a) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "dsagent plan: %s\n", msg.c_str());
    return 1;
  };
  ModelConfig c;  // DeepSeek-V3.2's published values
  std::string source = "DeepSeek-V3.2 (published config)";
  if (!a.path.empty()) {
    std::filesystem::path p = a.path;
    if (std::filesystem::is_directory(p)) p /= "config.json";
    auto loaded = load_config(p);
    if (!loaded.ok()) return fail(loaded.error().message);
    if (auto r = check_engine_limits(*loaded, p.string()); !r) return fail(r.error().message);
    c = *loaded;
    source = p.string();
  }
  MemoryPlanOptions o;
  o.ranks = a.gpus;
  o.context = a.context;
  o.sequences = a.sequences;
  o.fp8_cache = !a.bf16_cache;
  o.prefill_chunk = a.prefill_chunk;
  auto plan = plan_memory(c, o);
  if (!plan.ok()) return fail(plan.error().message);
  const uint64_t device = uint64_t(a.gpu_memory_gib * double(1ull << 30));
  const int r = plan->largest_rank();
  const RankMemory& m = plan->ranks[size_t(r)];
  Result<void> verdict = device ? check_fits(*plan, device) : Result<void>{};
  const int64_t most = device ? max_sequences(c, o, device) : -1;

  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = source;
    j["gpus"] = a.gpus;
    j["context"] = a.context;
    j["sequences"] = a.sequences;
    j["cache"] = a.bf16_cache ? "bf16" : "fp8";
    j["checkpoint_bytes"] = plan->checkpoint_bytes;
    j["ranks"] = nlohmann::ordered_json::array();
    for (const RankMemory& k : plan->ranks)
      j["ranks"].push_back({{"weights", k.weights},
                            {"latent_cache", k.latent_cache},
                            {"indexer_cache", k.indexer_cache},
                            {"workspace", k.workspace},
                            {"total", k.total()}});
    if (device) {
      j["gpu_memory_bytes"] = device;
      j["fits"] = verdict.ok();
      j["max_sequences"] = most;
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model        %s: checkpoint %s (main layers)\n", source.c_str(),
                with_units(plan->checkpoint_bytes).c_str());
    if (a.gpus > 1) {
      std::printf("layout       %d GPUs: expert e and layer l's shared experts on GPU e %% %d and l %% %d, q_b/kv_b and "
                  "the dense gate/up split %d ways", a.gpus, a.gpus, a.gpus, a.gpus);
      if (c.splits_hidden_rows(a.gpus)) std::printf(", o_proj and the dense down_proj by output rows");
      if (c.splits_vocab(a.gpus)) std::printf(", lm_head and the embedding by vocabulary rows");
      std::printf(", the rest and the caches on every GPU\n");
    }
    std::printf("per GPU      %lld sequence(s) x %lld tokens, %s latent records\n", (long long)a.sequences,
                (long long)a.context, a.bf16_cache ? "bf16" : "fp8");
    if (a.gpus > 1) {
      uint64_t least = m.weights;
      for (const RankMemory& other : plan->ranks) least = std::min(least, other.weights);
      std::printf("  weights    %s (GPU %d, the most; the least %s)\n", with_units(m.weights).c_str(), r,
                  with_units(least).c_str());
    } else
      std::printf("  weights    %s\n", with_units(m.weights).c_str());
    std::printf("  kv cache   %s\n", with_units(m.latent_cache).c_str());
    std::printf("  indexer    %s\n", with_units(m.indexer_cache).c_str());
    std::printf("  workspace  %s (a %lld-token prefill chunk)\n", with_units(m.workspace).c_str(),
                (long long)a.prefill_chunk);
    std::printf("  total      %s\n", with_units(m.total()).c_str());
    if (device) {
      std::printf("device       %s per GPU: %s; at most %lld sequence(s) of %lld tokens fit\n", with_units(device).c_str(),
                  verdict.ok() ? "fits" : "does not fit", (long long)most, (long long)a.context);
    }
  }
  if (!verdict.ok()) return fail(verdict.error().message);
  return 0;
}

}  // namespace

void add_plan_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("plan", "Memory per GPU for a model (weights, caches, workspace) before loading it");
  auto args = std::make_shared<PlanArgs>();
  cmd->add_option("model", args->path, "Model directory or its config.json (default: DeepSeek-V3.2's published config)");
  cmd->add_option("--gpus", args->gpus, "GPUs, tensor and expert parallel over the same ones")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--gpu-memory", args->gpu_memory_gib, "GiB per GPU: check that the plan fits (exit 1 if not)")
      ->check(real_range(0.001, 1 << 20));
  cmd->add_option("--context", args->context, "tokens per sequence")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), kMaxPlanTokens));
  cmd->add_option("--sequences", args->sequences, "sequences held at full context at once")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), kMaxPlanSequences));
  cmd->add_option("--prefill-chunk", args->prefill_chunk, "tokens per prefill step (sizes the workspace)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), kMaxPlanTokens));
  cmd->add_flag("--bf16-cache", args->bf16_cache, "bf16 latent records instead of FlashMLA's FP8 ones");
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->footer(
      "Examples:\n"
      "  dsagent plan --gpus 8 --gpu-memory 140.4            # DeepSeek-V3.2 on 8 H200s\n"
      "  dsagent plan --gpus 8 --gpu-memory 79.6             # 8 H100s: exits 1, the weights alone do not fit\n"
      "  dsagent plan ./DeepSeek-V3.2 --gpus 8 --context 32768 --sequences 16 --json\n");
  cmd->callback([args, &exit_code] { exit_code = run_plan(*args); });
}

}  // namespace dsa::cli
