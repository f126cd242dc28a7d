// Byte and FLOP accounting for `dsagent bench` (cost_model.hpp).
#include "cli/bench/cost_model.hpp"

#include <algorithm>
#include <string>
#include <string_view>

#include "kernels/cpu/indexer.hpp"

namespace dsa::cli {

namespace {

// The layer index of "model.layers.<L>.…", or -1.
int64_t layer_of(std::string_view name) {
  constexpr std::string_view prefix = "model.layers.";
  if (!name.starts_with(prefix)) return -1;
  name.remove_prefix(prefix.size());
  int64_t layer = 0;
  size_t i = 0;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) layer = layer * 10 + (name[i] - '0');
  return i == 0 ? -1 : layer;
}

bool is_matmul_weight(const TensorInfo& t) {
  return t.shape.size() == 2 && (t.dtype == DType::F8_E4M3 || t.dtype == DType::BF16);
}

}  // namespace

WeightTraffic weight_traffic(const Checkpoint& ckpt, const ModelConfig& cfg) {
  WeightTraffic w;
  double routed_bytes = 0, routed_params = 0;  // all routed experts of all layers
  for (const TensorInfo& t : ckpt.tensors()) {
    const int64_t layer = layer_of(t.name);
    if (layer >= cfg.num_hidden_layers) continue;  // MTP
    const double bytes = double(t.nbytes);
    w.checkpoint_bytes += bytes;
    if (t.name == "model.embed_tokens.weight") {
      w.bytes_per_token += bytes / double(std::max<int64_t>(t.shape[0], 1));
      continue;
    }
    const double params = is_matmul_weight(t) ? double(t.numel()) : 0.0;
    if (t.name.find(".mlp.experts.") != std::string::npos) {
      routed_bytes += bytes;
      routed_params += params;
      continue;
    }
    w.bytes_per_token += bytes;
    w.matmul_params += params;
  }
  int64_t n_moe_layers = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) n_moe_layers += cfg.is_moe_layer(l) ? 1 : 0;
  if (n_moe_layers > 0 && cfg.n_routed_experts > 0) {
    const double active = double(cfg.num_experts_per_tok) / double(cfg.n_routed_experts);
    w.bytes_per_token += routed_bytes * active;
    w.matmul_params += routed_params * active;
  }
  return w;
}

CacheTraffic cache_traffic(const ModelConfig& cfg, cpu::LatentFormat fmt, AttentionMode mode, int64_t n) {
  const double record = double(cpu::latent_record_bytes(fmt, cfg.kv_lora_rank, cfg.qk_rope_head_dim));
  const double index_key = double(cpu::indexer_page_bytes(cfg.index_head_dim)) / double(cpu::kIndexerPageTokens);
  const double attended = mode == AttentionMode::sparse ? double(std::min(cfg.index_topk, n)) : double(n);
  const double heads = double(cfg.num_attention_heads), lora = double(cfg.kv_lora_rank);
  // Absorbed decode: scores over lora + rope dims, output over lora dims, per head and key.
  const double attn_flops = 2.0 * heads * attended * (2.0 * lora + double(cfg.qk_rope_head_dim));
  CacheTraffic c;
  c.bytes = attended * record;
  c.flops = attn_flops;
  if (mode == AttentionMode::sparse) {
    c.bytes += double(n) * index_key;
    c.indexer_flops = 2.0 * double(n) * double(cfg.index_n_heads) * double(cfg.index_head_dim);
    c.flops += c.indexer_flops;
  }
  const double layers = double(cfg.num_hidden_layers);
  c.bytes *= layers;
  c.flops *= layers;
  c.indexer_flops *= layers;
  return c;
}

}  // namespace dsa::cli
