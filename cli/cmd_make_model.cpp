// `dsagent make-model OUT --preset tiny|bench-s|bench-m [--dtype fp8|bf16] [--shards N] [--seed N]
// [--force]` (cli.md): writes a random-weight checkpoint in the Hugging Face DeepSeek-V3.2 layout.
#include <climits>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "engine/model/config.hpp"
#include "engine/model/make_model.hpp"

namespace dsa::cli {

namespace {

struct MakeModelArgs {
  std::string out_dir;
  std::string preset;
  std::string dtype = "fp8";
  int shards = 1;
  uint64_t seed = 0;
  bool force = false;
};

int run_make_model(const MakeModelArgs& args) {
  auto config = preset_config(args.preset);
  if (!config.ok()) {
    std::fprintf(stderr, "dsagent make-model: %s\n", config.error().message.c_str());
    return 1;
  }
  if (args.dtype == "bf16") {
    config->fp8 = false;
    config->scale_fmt.clear();
  }
  std::error_code ec;
  if (!args.force && std::filesystem::is_directory(args.out_dir, ec) && !std::filesystem::is_empty(args.out_dir, ec)) {
    std::fprintf(stderr, "dsagent make-model: %s: directory is not empty (use --force to replace its checkpoint)\n",
                 args.out_dir.c_str());
    return 1;
  }
  MakeModelOptions options;
  options.n_shards = args.shards;
  options.seed = args.seed;
  options.overwrite = args.force;
  const auto summary = make_model(args.out_dir, *config, options, [](const std::string& file) {
    std::fprintf(stderr, "writing %s\n", file.c_str());
  });
  if (!summary.ok()) {
    std::fprintf(stderr, "dsagent make-model: %s\n", summary.error().message.c_str());
    return 1;
  }
  std::printf("wrote %s: preset %s, %s, %lld tensors, %llu bytes of weights in %d shard(s), %zu files\n",
              args.out_dir.c_str(), args.preset.c_str(), args.dtype.c_str(), static_cast<long long>(summary->n_tensors),
              static_cast<unsigned long long>(summary->tensor_bytes), args.shards, summary->files.size());
  return 0;
}

}  // namespace

void add_make_model_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("make-model", "Write a random-weight checkpoint in the Hugging Face DeepSeek-V3.2 layout");
  auto args = std::make_shared<MakeModelArgs>();
  cmd->add_option("out", args->out_dir, "Output directory")->required();
  cmd->add_option("--preset", args->preset, "Model size: tiny (tests), bench-s (CPU bench), bench-m (GPU bench)")
      ->required()
      ->check(CLI::IsMember({"tiny", "bench-s", "bench-m"}));
  cmd->add_option("--dtype", args->dtype, "Linear weights: fp8 (e4m3, 128x128 block scales) or bf16")
      ->check(CLI::IsMember({"fp8", "bf16"}));
  cmd->add_option("--shards", args->shards, "Number of safetensors shards (1: a single model.safetensors)")
      ->check(CLI::Range(1, INT_MAX));
  cmd->add_option("--seed", args->seed, "Random seed (the same seed gives the same weights)");
  cmd->add_flag("--force", args->force, "Write into a non-empty directory, replacing its checkpoint files");
  cmd->footer(
      "Examples:\n"
      "  dsagent make-model /tmp/tiny --preset tiny\n"
      "  dsagent make-model /tmp/bench-s --preset bench-s --shards 4 --seed 7\n"
      "  dsagent make-model /tmp/tiny-bf16 --preset tiny --dtype bf16 --force\n");
  cmd->callback([args, &exit_code] { exit_code = run_make_model(*args); });
}

}  // namespace dsa::cli
