// `dsagent inspect DIR [--json]` (cli.md): what a checkpoint holds and costs: the config, the layers
// (dense / MoE), total and active parameters, bytes by dtype, KV and indexer cache bytes per token
// and at 128K, FP8 scales that are not powers of two (reported only), and any problem that keeps
// the engine from loading it (a config beyond the engine's limits, a missing tensor, a wrong dtype
// or shape), which makes the exit status non-zero.
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/units.hpp"
#include "engine/loader/fp8_blocks.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/config.hpp"
#include "engine/model/forward_checks.hpp"
#include "engine/model/inventory.hpp"
#include "engine/model/memory_plan.hpp"

namespace dsa::cli {

namespace {

constexpr int64_t kContext128K = 131072;

struct InspectArgs {
  std::string dir;
  bool json = false;
};

int run_inspect(const InspectArgs& args) {
  const std::filesystem::path dir = args.dir;
  auto config = load_config(dir / "config.json");
  if (!config.ok()) {
    std::fprintf(stderr, "dsagent inspect: %s\n", config.error().message.c_str());
    return 1;
  }
  auto ckpt = Checkpoint::open(dir);
  if (!ckpt.ok()) {
    std::fprintf(stderr, "dsagent inspect: %s\n", ckpt.error().message.c_str());
    return 1;
  }
  const ModelConfig& c = *config;
  // A problem is what keeps generate from loading the model: first the engine's limits on the
  // config, then the checkpoint's tensors.
  const auto limits = check_engine_limits(c, (dir / "config.json").string());
  const auto check_result = limits.ok() ? check_inventory(*ckpt, c) : Result<std::vector<std::string>>(limits.error());
  const ParamCounts params = count_params(c);
  int64_t n_dense = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) n_dense += c.is_moe_layer(l) ? 0 : 1;
  std::map<std::string, uint64_t> bytes_by_dtype;
  uint64_t total_bytes = 0;
  int64_t n_scales = 0, n_non_pow2 = 0, n_unusable = 0;
  std::string first_unusable;
  for (const TensorInfo& t : ckpt->tensors()) {
    bytes_by_dtype[dtype_name(t.dtype)] += t.nbytes;
    total_bytes += t.nbytes;
    if (t.dtype == DType::F32 && t.name.ends_with("weight_scale_inv")) {
      n_scales += t.numel();
      n_non_pow2 += count_non_pow2_scales(t);
      const int64_t unusable = count_unusable_scales(t);
      if (unusable > 0 && first_unusable.empty()) first_unusable = t.name;
      n_unusable += unusable;
    }
  }
  // Scales that make the model's output NaN are a problem of the checkpoint, as a tensor of the
  // wrong shape is.
  auto check = check_result;
  if (check.ok() && n_unusable > 0)
    check = make_error(std::to_string(n_unusable) + " FP8 scale(s) are NaN, infinite, zero or negative (the first in " +
                       first_unusable + ")");
  const CacheBytesPerToken fp8 = cache_bytes_per_token(c, true), bf16 = cache_bytes_per_token(c, false);

  if (args.json) {
    nlohmann::ordered_json j;
    j["model"] = args.dir;
    j["config"] = nlohmann::json::parse(config_to_json(c));
    j["layers"] = {{"total", c.num_hidden_layers}, {"dense", n_dense}, {"moe", c.num_hidden_layers - n_dense}};
    j["params"] = {{"total", params.total}, {"active", params.active}};
    j["bytes_by_dtype"] = bytes_by_dtype;
    j["bytes_total"] = total_bytes;
    j["n_tensors"] = ckpt->tensors().size();
    j["n_shards"] = ckpt->shard_paths().size();
    j["cache_bytes_per_token"] = {{"kv_bf16_latent", bf16.latent}, {"kv_fp8", fp8.latent}, {"indexer", fp8.indexer}};
    j["cache_bytes_at_128k"] = {{"tokens", kContext128K},
                                {"kv_bf16_latent", bf16.latent * kContext128K},
                                {"kv_fp8", fp8.latent * kContext128K},
                                {"indexer", fp8.indexer * kContext128K}};
    j["fp8_scales"] = {{"count", n_scales}, {"not_power_of_two", n_non_pow2}, {"unusable", n_unusable}};
    j["warnings"] = check.ok() ? *check : std::vector<std::string>{};
    j["problem"] = check.ok() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(check.error().message);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("model        %s\n", args.dir.c_str());
    std::printf("config       %s: vocab %lld, hidden %lld, heads %lld, q_lora %lld, kv_lora %lld, qk %lld+%lld, v %lld\n",
                c.model_type.c_str(), (long long)c.vocab_size, (long long)c.hidden_size, (long long)c.num_attention_heads,
                (long long)c.q_lora_rank, (long long)c.kv_lora_rank, (long long)c.qk_nope_head_dim,
                (long long)c.qk_rope_head_dim, (long long)c.v_head_dim);
    std::printf("             experts %lld routed (%lld per token, %lld groups, top %lld), %lld shared, moe_inter %lld, dense inter %lld\n",
                (long long)c.n_routed_experts, (long long)c.num_experts_per_tok, (long long)c.n_group,
                (long long)c.topk_group, (long long)c.n_shared_experts, (long long)c.moe_intermediate_size,
                (long long)c.intermediate_size);
    std::printf("             indexer %lld heads x %lld, top-k %lld; softmax scale %.8f; weights %s\n",
                (long long)c.index_n_heads, (long long)c.index_head_dim, (long long)c.index_topk, c.softmax_scale(),
                c.fp8 ? ("fp8 e4m3, " + std::to_string(c.weight_block_size) + "x" + std::to_string(c.weight_block_size) +
                         " blocks, scale_fmt " + (c.scale_fmt.empty() ? "none" : c.scale_fmt)).c_str()
                      : "bf16");
    std::printf("layers       %lld: %lld dense, %lld MoE\n", (long long)c.num_hidden_layers, (long long)n_dense,
                (long long)(c.num_hidden_layers - n_dense));
    std::printf("parameters   total %lld, active per token %lld\n", (long long)params.total, (long long)params.active);
    std::string by_dtype;
    for (const auto& [name, b] : bytes_by_dtype) by_dtype += (by_dtype.empty() ? "" : ", ") + name + " " + std::to_string(b);
    std::printf("bytes        %llu (%s) in %zu tensors, %zu shard(s): %s\n", (unsigned long long)total_bytes,
                with_units(double(total_bytes)).c_str(), ckpt->tensors().size(), ckpt->shard_paths().size(),
                by_dtype.c_str());
    std::printf("kv cache     per token %lld B (bf16 latent) or %lld B (fp8 records); at 128K %s or %s\n",
                (long long)bf16.latent, (long long)fp8.latent,
                with_units(double(bf16.latent * kContext128K)).c_str(),
                with_units(double(fp8.latent * kContext128K)).c_str());
    std::printf("indexer      per token %lld B; at 128K %s\n", (long long)fp8.indexer,
                with_units(double(fp8.indexer * kContext128K)).c_str());
    std::printf("fp8 scales   %lld, of which %lld not a power of two\n", (long long)n_scales, (long long)n_non_pow2);
    if (check.ok())
      for (const std::string& w : *check) std::printf("warning      %s\n", w.c_str());
  }
  if (!check.ok()) {
    std::fprintf(stderr, "dsagent inspect: %s\n", check.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("inspect", "Show a checkpoint's config, parameter and byte counts, cache bytes per token, problems");
  auto args = std::make_shared<InspectArgs>();
  cmd->add_option("dir", args->dir, "Model directory (config.json and safetensors)")->required();
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->footer(
      "Examples:\n"
      "  dsagent inspect ./DeepSeek-V3.2\n"
      "  dsagent inspect /tmp/tiny --json\n");
  cmd->callback([args, &exit_code] { exit_code = run_inspect(*args); });
}

}  // namespace dsa::cli
