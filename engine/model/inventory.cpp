// Tensor inventory of the HF DeepSeek-V3.2 layout (model-spec 2.2) and the checks against a checkpoint.
#include "engine/model/inventory.hpp"

#include <algorithm>
#include <charconv>
#include <unordered_set>

namespace dsa {

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::span<const DType> accepted_dtypes(const TensorSpec& s) {
  const bool vector =
      s.role == TensorRole::norm || s.role == TensorRole::router_bias || s.role == TensorRole::indexer_norm;
  return vector ? std::span<const DType>(kVectorDTypes) : std::span<const DType>(&s.dtype, 1);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

class InventoryBuilder {
 public:
  explicit InventoryBuilder(const ModelConfig& c) : c_(c) {}

  void add(std::string name, DType dtype, std::vector<int64_t> shape, TensorRole role, int64_t layer = -1,
           int64_t expert = -1) {
    out_.push_back({std::move(name), dtype, std::move(shape), role, layer, expert});
  }
  // A projection W[out, in]: FP8 with its block scale when the config is FP8, BF16 otherwise.
  void linear(const std::string& name, int64_t out, int64_t in, int64_t layer, int64_t expert = -1) {
    if (!c_.fp8) {
      add(name, DType::BF16, {out, in}, TensorRole::linear, layer, expert);
      return;
    }
    const int64_t b = c_.weight_block_size;
    add(name, DType::F8_E4M3, {out, in}, TensorRole::linear, layer, expert);
    add(name + "_scale_inv", DType::F32, {ceil_div(out, b), ceil_div(in, b)}, TensorRole::linear_scale, layer, expert);
  }
  void mlp(const std::string& prefix, int64_t inter, int64_t layer, int64_t expert = -1) {
    const int64_t h = c_.hidden_size;
    linear(prefix + "gate_proj.weight", inter, h, layer, expert);
    linear(prefix + "up_proj.weight", inter, h, layer, expert);
    linear(prefix + "down_proj.weight", h, inter, layer, expert);
  }
  std::vector<TensorSpec> take() { return std::move(out_); }

 private:
  const ModelConfig& c_;
  std::vector<TensorSpec> out_;
};

// The decoder layer a tensor name belongs to ("model.layers.12.…" -> 12), or -1.
int64_t layer_of(const std::string& name) {
  static const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  int64_t layer = -1;
  const char* begin = name.data() + prefix.size();
  const char* end = name.data() + name.size();
  const auto [p, ec] = std::from_chars(begin, end, layer);
  if (ec != std::errc() || p == begin || p == end || *p != '.') return -1;
  return layer;
}

}  // namespace

std::vector<TensorSpec> tensor_inventory(const ModelConfig& c) {
  InventoryBuilder b(c);
  const int64_t h = c.hidden_size;
  b.add("model.embed_tokens.weight", DType::BF16, {c.vocab_size, h}, TensorRole::embedding);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string a = p + "self_attn.";
    b.add(p + "input_layernorm.weight", DType::BF16, {h}, TensorRole::norm, l);
    b.linear(a + "q_a_proj.weight", c.q_lora_rank, h, l);
    b.add(a + "q_a_layernorm.weight", DType::BF16, {c.q_lora_rank}, TensorRole::norm, l);
    b.linear(a + "q_b_proj.weight", c.num_attention_heads * c.qk_head_dim(), c.q_lora_rank, l);
    b.linear(a + "kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, h, l);
    b.add(a + "kv_a_layernorm.weight", DType::BF16, {c.kv_lora_rank}, TensorRole::norm, l);
    b.linear(a + "kv_b_proj.weight", c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank, l);
    b.linear(a + "o_proj.weight", h, c.num_attention_heads * c.v_head_dim, l);
    b.linear(a + "indexer.wq_b.weight", c.index_n_heads * c.index_head_dim, c.q_lora_rank, l);
    b.linear(a + "indexer.wk.weight", c.index_head_dim, h, l);
    b.add(a + "indexer.k_norm.weight", DType::F32, {c.index_head_dim}, TensorRole::indexer_norm, l);
    b.add(a + "indexer.k_norm.bias", DType::F32, {c.index_head_dim}, TensorRole::indexer_norm, l);
    b.add(a + "indexer.weights_proj.weight", DType::BF16, {c.index_n_heads, h}, TensorRole::indexer_weights, l);
    b.add(p + "post_attention_layernorm.weight", DType::BF16, {h}, TensorRole::norm, l);
    if (!c.is_moe_layer(l)) {
      b.mlp(p + "mlp.", c.intermediate_size, l);
      continue;
    }
    b.add(p + "mlp.gate.weight", DType::BF16, {c.n_routed_experts, h}, TensorRole::router, l);
    b.add(p + "mlp.gate.e_score_correction_bias", DType::F32, {c.n_routed_experts}, TensorRole::router_bias, l);
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      b.mlp(p + "mlp.experts." + std::to_string(e) + ".", c.moe_intermediate_size, l, e);
    if (c.n_shared_experts > 0) b.mlp(p + "mlp.shared_experts.", c.n_shared_experts * c.moe_intermediate_size, l);
  }
  b.add("model.norm.weight", DType::BF16, {h}, TensorRole::norm);
  b.add("lm_head.weight", DType::BF16, {c.vocab_size, h}, TensorRole::lm_head);
  return b.take();
}

Result<std::vector<std::string>> check_inventory(const Checkpoint& ckpt, const ModelConfig& c) {
  const std::vector<TensorSpec> inventory = tensor_inventory(c);
  const auto shard_name = [&](const TensorInfo& t) -> std::string {
    const auto& paths = ckpt.shard_paths();
    return t.shard >= 0 && static_cast<size_t>(t.shard) < paths.size() ? paths[t.shard].filename().string() : "checkpoint";
  };
  std::unordered_set<std::string> expected;
  expected.reserve(inventory.size());
  for (const TensorSpec& s : inventory) {
    expected.insert(s.name);
    const TensorInfo* t = ckpt.find(s.name);
    const std::span<const DType> dtypes = accepted_dtypes(s);
    std::string want;
    for (const DType d : dtypes) want += (want.empty() ? "" : " or ") + std::string(dtype_name(d));
    want += " " + shape_string(s.shape);
    if (!t) {
      const std::string where = ckpt.shard_paths().size() == 1 ? ckpt.shard_paths()[0].filename().string() : "checkpoint";
      return make_error(where + ": tensor '" + s.name + "': missing (expected " + want + ")");
    }
    if (std::find(dtypes.begin(), dtypes.end(), t->dtype) == dtypes.end() || t->shape != s.shape)
      return make_error(shard_name(*t) + ": tensor '" + s.name + "': expected " + want + ", found " +
                        dtype_name(t->dtype) + " " + shape_string(t->shape));
  }
  std::vector<std::string> warnings;
  for (const TensorInfo& t : ckpt.tensors()) {
    if (expected.count(t.name) || layer_of(t.name) >= c.num_hidden_layers) continue;  // MTP layers: skipped
    warnings.push_back(shard_name(t) + ": tensor '" + t.name + "' (" + dtype_name(t.dtype) + " " +
                       shape_string(t.shape) + ") is not part of the model and is ignored");
  }
  return warnings;
}

ParamCounts count_params(const ModelConfig& c) {
  ParamCounts n;
  for (const TensorSpec& s : tensor_inventory(c)) {
    if (s.role == TensorRole::linear_scale) continue;
    const int64_t k = s.numel();
    n.total += k;
    if (s.role == TensorRole::embedding)
      n.active += c.hidden_size;  // one row per token
    else if (s.expert < 0 || s.expert < c.num_experts_per_tok)
      n.active += k;  // routed experts: any num_experts_per_tok of them, all the same size
  }
  return n;
}

}  // namespace dsa
