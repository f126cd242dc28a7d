// The tensors a DeepSeek-V3.2 checkpoint holds for a config (model-spec 2.2), in the Hugging Face
// layout: names, dtypes, shapes and what each is for; checking a checkpoint against it; and the
// parameter counts derived from it. MTP layers (index >= num_hidden_layers) are not part of it.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/config.hpp"

namespace dsa {

enum class TensorRole {
  embedding,        // model.embed_tokens.weight
  lm_head,          // lm_head.weight
  norm,             // RMSNorm weights
  linear,           // a projection weight (FP8 with a scale, or BF16)
  linear_scale,     // the FP8 weight's weight_scale_inv [ceil(out/B), ceil(in/B)] f32
  router,           // mlp.gate.weight (bf16)
  router_bias,      // mlp.gate.e_score_correction_bias (f32)
  indexer_norm,     // indexer.k_norm weight and bias (LayerNorm, f32)
  indexer_weights,  // indexer.weights_proj.weight (bf16)
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<int64_t> shape;
  TensorRole role = TensorRole::linear;
  int64_t layer = -1;   // decoder layer index, -1 for global tensors
  int64_t expert = -1;  // routed expert index, -1 otherwise

  int64_t numel() const;
};

// The dtypes a checkpoint may store a spec's tensor in, as the loader binds it: a vector (a norm's
// weight or bias, the router's bias) BF16 or F32, since it is copied to fp32 at load; any other
// tensor exactly the spec's dtype. The spec's dtype is what make-model writes.
std::span<const DType> accepted_dtypes(const TensorSpec& s);
inline constexpr std::array<DType, 2> kVectorDTypes = {DType::BF16, DType::F32};

// Every tensor of the main model in a fixed order: embedding, then layer by layer (each linear
// followed by its scale), then the final norm and lm_head.
std::vector<TensorSpec> tensor_inventory(const ModelConfig& c);

// "[1024, 128]"
std::string shape_string(const std::vector<int64_t>& shape);

// The first missing tensor or dtype/shape mismatch (accepted_dtypes), named with its shard:
//   model-00001-of-00003.safetensors: tensor 'X': expected F8_E4M3 [1024, 128], found BF16 [1024, 128]
// Tensors of MTP layers are ignored; other tensors not in the inventory are returned as warnings.
Result<std::vector<std::string>> check_inventory(const Checkpoint& ckpt, const ModelConfig& c);

struct ParamCounts {
  int64_t total = 0;   // every weight of the main model (scales are not parameters)
  int64_t active = 0;  // used per token: one embedding row, the full lm_head, attention, dense MLPs,
                       // and per MoE layer the router, shared experts and num_experts_per_tok experts
};
ParamCounts count_params(const ModelConfig& c);

}  // namespace dsa
