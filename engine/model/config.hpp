// ModelConfig: the fields of a Hugging Face `config.json` with model_type deepseek_v32
// (model-spec section 1.1), validated, plus what is derived from them (head dims, YaRN scale).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

struct RopeScaling {
  std::string type = "yarn";
  double factor = 40.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 1.0;
};

struct ModelConfig {
  std::string model_type = "deepseek_v32";
  int64_t vocab_size = 129280;
  int64_t hidden_size = 7168;
  int64_t num_hidden_layers = 61;
  int64_t num_nextn_predict_layers = 1;  // MTP layers stored after the main layers; skipped
  int64_t first_k_dense_replace = 3;
  int64_t moe_layer_freq = 1;
  int64_t intermediate_size = 18432;
  int64_t moe_intermediate_size = 2048;
  int64_t n_routed_experts = 256;
  int64_t n_shared_experts = 1;
  int64_t num_experts_per_tok = 8;
  int64_t n_group = 8;
  int64_t topk_group = 4;
  double routed_scaling_factor = 2.5;
  std::string scoring_func = "sigmoid";
  std::string topk_method = "noaux_tc";
  bool norm_topk_prob = true;
  int64_t num_attention_heads = 128;
  int64_t num_key_value_heads = 128;
  int64_t q_lora_rank = 1536;
  int64_t kv_lora_rank = 512;
  int64_t qk_nope_head_dim = 128;
  int64_t qk_rope_head_dim = 64;
  int64_t v_head_dim = 128;
  int64_t index_n_heads = 64;
  int64_t index_head_dim = 128;
  int64_t index_topk = 2048;
  std::string hidden_act = "silu";
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 163840;
  bool attention_bias = false;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  // quantization_config; absent means BF16 weights.
  bool fp8 = true;
  int64_t weight_block_size = 128;  // weight_block_size [128,128]
  std::string scale_fmt = "ue8m0";

  // Derived.
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Over n_ranks ranks, whether o_proj and the dense MLP's down_proj are split by output rows (each
  // rank computes its share of the hidden size, then the shares are gathered): the hidden size
  // splits n_ranks ways, into whole 128-row scale blocks for FP8 weights. Otherwise every rank holds
  // them whole.
  bool splits_hidden_rows(int64_t n_ranks) const {
    return n_ranks > 1 && hidden_size % n_ranks == 0 && (!fp8 || (hidden_size / n_ranks) % weight_block_size == 0);
  }
  // Over n_ranks ranks, whether lm_head is split by vocabulary rows (each rank computes its share of
  // the logits, then the shares are gathered): the vocabulary splits n_ranks ways.
  bool splits_vocab(int64_t n_ranks) const { return n_ranks > 1 && vocab_size % n_ranks == 0; }
  // Over n_ranks ranks, the rank holding and running a layer's shared experts: layer % n_ranks, so
  // every rank holds about as many; -1 (no rank) for a model without shared experts.
  int shared_experts_rank(int64_t layer, int64_t n_ranks) const {
    return n_shared_experts > 0 ? static_cast<int>(layer % n_ranks) : -1;
  }
  bool is_moe_layer(int64_t layer) const {
    return layer >= first_k_dense_replace && (layer - first_k_dense_replace) % moe_layer_freq == 0;
  }
  // YaRN attention scale: qk_head_dim^-0.5 * mscale^2 with mscale = 0.1 * mscale_all_dim * ln(factor) + 1.
  double softmax_scale() const;
};

// Reads and validates DIR/config.json. Errors name the file and the field.
Result<ModelConfig> load_config(const std::filesystem::path& config_json);
Result<ModelConfig> parse_config(const std::string& json_text, const std::string& source_name);
// Checks ranges and relations between fields (divisibility, group sizes, ...).
Result<void> validate_config(const ModelConfig& c, const std::string& source_name);
// The config.json text for a config (what make-model writes).
std::string config_to_json(const ModelConfig& c);

// The fixed presets of `make-model` (performance.md): tiny (unit tests), bench-s (CPU), bench-m (GPU).
Result<ModelConfig> preset_config(const std::string& name);

}  // namespace dsa
