// Weight binding (model-spec 2.2): every tensor the config implies, looked up by its Hugging Face
// name and checked against the dtype and shape the config implies, with tensor-parallel row slices.
#include "engine/model/weights.hpp"

#include <cstring>
#include <span>
#include <string>

#include "engine/model/inventory.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/dtypes.hpp"

namespace dsa {

void Linear::apply(const float* x, int64_t m, float* y) const {
  if (scale_inv) {
    cpu::matmul_fp8(x, m, k, static_cast<const uint8_t*>(w), scale_inv, n, y);
  } else {
    cpu::matmul_bf16(x, m, k, static_cast<const uint16_t*>(w), n, y, /*round_out_bf16=*/true);
  }
}

Linear Linear::rows(int64_t start, int64_t count) const {
  Linear out = *this;
  out.n = count;
  if (scale_inv) {
    out.w = static_cast<const uint8_t*>(w) + start * k;
    out.scale_inv = scale_inv + (start / 128) * ((k + 127) / 128);
  } else {
    out.w = static_cast<const uint16_t*>(w) + start * k;
  }
  return out;
}

void Bf16Matrix::apply(const float* x, int64_t m, float* y) const {
  cpu::matmul_bf16(x, m, k, w, n, y, /*round_out_bf16=*/false);
}

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Looks up NAME and checks it is one of the accepted dtypes with exactly SHAPE.
class Binder {
 public:
  explicit Binder(const Checkpoint& ckpt) : ckpt_(ckpt) {}

  Result<const TensorInfo*> tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const {
    return tensor(name, std::span<const DType>(&dtype, 1), shape);
  }
  Result<const TensorInfo*> tensor(const std::string& name, std::span<const DType> dtypes,
                                   const std::vector<int64_t>& shape) const {
    const TensorInfo* t = ckpt_.find(name);
    std::string want;
    for (DType d : dtypes) {
      if (!want.empty()) want += " or ";
      want += dtype_name(d);
    }
    want += ' ';
    want += shape_text(shape);
    if (!t) return make_error("checkpoint: missing tensor " + name + " (expected " + want + ")");
    bool dtype_ok = false;
    for (DType d : dtypes) dtype_ok = dtype_ok || t->dtype == d;
    if (!dtype_ok || t->shape != shape) {
      return make_error("checkpoint: tensor " + name + ": expected " + want + ", got " + dtype_name(t->dtype) +
                        " " + t->shape_str());
    }
    return t;
  }

  // A norm weight or bias vector [n], any of kVectorDTypes in the file, copied to fp32.
  Result<std::vector<float>> vec(const std::string& name, int64_t n) const {
    DSA_TRY(t, tensor(name, kVectorDTypes, {n}));
    std::vector<float> out(static_cast<size_t>(n));
    if (t->dtype == DType::F32) {
      std::memcpy(out.data(), t->data, static_cast<size_t>(n) * sizeof(float));
    } else {
      const auto* h = reinterpret_cast<const uint16_t*>(t->data);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(h[i]);
    }
    return out;
  }

  Result<Bf16Matrix> bf16_matrix(const std::string& name, int64_t n, int64_t k) const {
    DSA_TRY(t, tensor(name, DType::BF16, {n, k}));
    return Bf16Matrix{reinterpret_cast<const uint16_t*>(t->data), n, k};
  }

  // PREFIX.weight [n,k]: F8_E4M3 with PREFIX.weight_scale_inv F32 [ceil(n/128), ceil(k/128)], or BF16.
  Result<Linear> linear(const std::string& prefix, int64_t n, int64_t k, bool fp8) const {
    Linear l;
    l.n = n;
    l.k = k;
    if (!fp8) {
      DSA_TRY(t, tensor(prefix + ".weight", DType::BF16, {n, k}));
      l.w = t->data;
      return l;
    }
    DSA_TRY(t, tensor(prefix + ".weight", DType::F8_E4M3, {n, k}));
    if (k % 128 != 0) {
      return make_error("checkpoint: tensor " + prefix + ".weight: FP8 needs in-features divisible by 128, got " +
                        std::to_string(k));
    }
    DSA_TRY(s, tensor(prefix + ".weight_scale_inv", DType::F32, {(n + 127) / 128, (k + 127) / 128}));
    l.w = t->data;
    l.scale_inv = reinterpret_cast<const float*>(s->data);
    return l;
  }

 private:
  const Checkpoint& ckpt_;
};

float weight_at(const Linear& l, int64_t row, int64_t col) {
  if (!l.scale_inv) return bf16_to_float(static_cast<const uint16_t*>(l.w)[row * l.k + col]);
  const float s = l.scale_inv[(row / 128) * ((l.k + 127) / 128) + col / 128];
  return round_bf16(fp8_e4m3_to_float(static_cast<const uint8_t*>(l.w)[row * l.k + col]) * s);
}

// The absorbed-MLA factors of this rank's kv_b_proj rows [H * (nope + v), kv_lora], dequantised once.
void absorb_kv_b(const Linear& kv_b, int64_t n_heads, const ModelConfig& cfg, LayerWeights& lw) {
  const int64_t dn = cfg.qk_nope_head_dim, dv = cfg.v_head_dim, c = cfg.kv_lora_rank;
  lw.w_uk_t.resize(static_cast<size_t>(n_heads * c * dn));
  lw.w_uv.resize(static_cast<size_t>(n_heads * dv * c));
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t row0 = h * (dn + dv);
    for (int64_t d = 0; d < dn; ++d) {
      for (int64_t j = 0; j < c; ++j) lw.w_uk_t[(h * c + j) * dn + d] = float_to_bf16(weight_at(kv_b, row0 + d, j));
    }
    for (int64_t d = 0; d < dv; ++d) {
      for (int64_t j = 0; j < c; ++j) lw.w_uv[(h * dv + d) * c + j] = float_to_bf16(weight_at(kv_b, row0 + dn + d, j));
    }
  }
}

Result<MlpWeights> bind_mlp(const Binder& b, const std::string& prefix, int64_t hidden, int64_t inter, bool fp8) {
  MlpWeights m;
  DSA_TRY(gate, b.linear(prefix + "gate_proj", inter, hidden, fp8));
  DSA_TRY(up, b.linear(prefix + "up_proj", inter, hidden, fp8));
  DSA_TRY(down, b.linear(prefix + "down_proj", hidden, inter, fp8));
  m.gate_proj = gate;
  m.up_proj = up;
  m.down_proj = down;
  return m;
}

// Rows [rank * count, (rank + 1) * count) of a tensor with TOTAL rows; an error when uneven or
// when an FP8 scale block would be cut.
Result<Linear> shard_rows(const Linear& l, const std::string& name, int64_t total, int tp_rank, int tp_size) {
  if (tp_size == 1) return l;
  if (total % tp_size != 0) {
    return make_error("checkpoint: tensor " + name + ": " + std::to_string(total) + " rows do not split " +
                      std::to_string(tp_size) + " ways");
  }
  const int64_t count = total / tp_size;
  if (l.scale_inv && count % 128 != 0) {
    return make_error("checkpoint: tensor " + name + ": a " + std::to_string(tp_size) +
                      "-way split of an FP8 tensor cuts a 128-row scale block");
  }
  return l.rows(tp_rank * count, count);
}

Result<LayerWeights> bind_layer(const Binder& b, const ModelConfig& cfg, int64_t layer, int tp_rank, int tp_size) {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const std::string a = p + "self_attn.";
  const std::string ix = a + "indexer.";
  const int64_t D = cfg.hidden_size, H = cfg.num_attention_heads;
  const bool fp8 = cfg.fp8;
  const int64_t dqk = cfg.qk_head_dim(), dkv = cfg.qk_nope_head_dim + cfg.v_head_dim;
  LayerWeights lw;
  DSA_TRY(in_norm, b.vec(p + "input_layernorm.weight", D));
  DSA_TRY(post_norm, b.vec(p + "post_attention_layernorm.weight", D));
  lw.input_layernorm = std::move(in_norm);
  lw.post_attention_layernorm = std::move(post_norm);

  DSA_TRY(q_a, b.linear(a + "q_a_proj", cfg.q_lora_rank, D, fp8));
  DSA_TRY(q_a_norm, b.vec(a + "q_a_layernorm.weight", cfg.q_lora_rank));
  DSA_TRY(q_b, b.linear(a + "q_b_proj", H * dqk, cfg.q_lora_rank, fp8));
  DSA_TRY(kv_a, b.linear(a + "kv_a_proj_with_mqa", cfg.kv_lora_rank + cfg.qk_rope_head_dim, D, fp8));
  DSA_TRY(kv_a_norm, b.vec(a + "kv_a_layernorm.weight", cfg.kv_lora_rank));
  DSA_TRY(kv_b, b.linear(a + "kv_b_proj", H * dkv, cfg.kv_lora_rank, fp8));
  DSA_TRY(o, b.linear(a + "o_proj", D, H * cfg.v_head_dim, fp8));
  DSA_TRY(q_b_local, shard_rows(q_b, a + "q_b_proj.weight", H * dqk, tp_rank, tp_size));
  DSA_TRY(kv_b_local, shard_rows(kv_b, a + "kv_b_proj.weight", H * dkv, tp_rank, tp_size));
  lw.q_a_proj = q_a;
  lw.q_a_layernorm = std::move(q_a_norm);
  lw.q_b_proj = q_b_local;
  lw.kv_a_proj_with_mqa = kv_a;
  lw.kv_a_layernorm = std::move(kv_a_norm);
  lw.kv_b_proj = kv_b_local;
  lw.o_proj = o;
  if (cfg.splits_hidden_rows(tp_size)) {
    DSA_TRY(o_local, shard_rows(o, a + "o_proj.weight", D, tp_rank, tp_size));
    lw.o_proj = o_local;
  }
  absorb_kv_b(kv_b_local, H / tp_size, cfg, lw);

  DSA_TRY(wq_b, b.linear(ix + "wq_b", cfg.index_n_heads * cfg.index_head_dim, cfg.q_lora_rank, fp8));
  DSA_TRY(wk, b.linear(ix + "wk", cfg.index_head_dim, D, fp8));
  DSA_TRY(k_norm_w, b.vec(ix + "k_norm.weight", cfg.index_head_dim));
  DSA_TRY(k_norm_b, b.vec(ix + "k_norm.bias", cfg.index_head_dim));
  DSA_TRY(weights_proj, b.bf16_matrix(ix + "weights_proj.weight", cfg.index_n_heads, D));
  lw.idx_wq_b = wq_b;
  lw.idx_wk = wk;
  lw.idx_k_norm_weight = std::move(k_norm_w);
  lw.idx_k_norm_bias = std::move(k_norm_b);
  lw.idx_weights_proj = weights_proj;

  lw.is_moe = cfg.is_moe_layer(layer);
  const std::string m = p + "mlp.";
  if (!lw.is_moe) {
    DSA_TRY(mlp, bind_mlp(b, m, D, cfg.intermediate_size, fp8));
    DSA_TRY(gate_local, shard_rows(mlp.gate_proj, m + "gate_proj.weight", cfg.intermediate_size, tp_rank, tp_size));
    DSA_TRY(up_local, shard_rows(mlp.up_proj, m + "up_proj.weight", cfg.intermediate_size, tp_rank, tp_size));
    mlp.gate_proj = gate_local;
    mlp.up_proj = up_local;
    if (cfg.splits_hidden_rows(tp_size)) {
      DSA_TRY(down_local, shard_rows(mlp.down_proj, m + "down_proj.weight", D, tp_rank, tp_size));
      mlp.down_proj = down_local;
    }
    lw.mlp = mlp;
    return lw;
  }
  DSA_TRY(gate, b.bf16_matrix(m + "gate.weight", cfg.n_routed_experts, D));
  DSA_TRY(bias, b.vec(m + "gate.e_score_correction_bias", cfg.n_routed_experts));
  lw.gate = gate;
  lw.gate_bias = std::move(bias);
  for (int64_t e = 0; e < cfg.n_routed_experts; ++e) {
    DSA_TRY(expert, bind_mlp(b, m + "experts." + std::to_string(e) + ".", D, cfg.moe_intermediate_size, fp8));
    lw.experts.push_back(expert);
  }
  if (cfg.n_shared_experts > 0) {  // a model may route every token to experts only
    DSA_TRY(shared, bind_mlp(b, m + "shared_experts.", D, cfg.moe_intermediate_size * cfg.n_shared_experts, fp8));
    lw.shared_experts = shared;
  }
  return lw;
}

}  // namespace

Result<Weights> bind_weights(const Checkpoint& ckpt, const ModelConfig& cfg, int tp_rank, int tp_size) {
  DSA_CHECK(tp_size >= 1 && tp_rank >= 0 && tp_rank < tp_size);
  if (cfg.num_attention_heads % tp_size != 0) {
    return make_error("config: num_attention_heads " + std::to_string(cfg.num_attention_heads) +
                      " does not split " + std::to_string(tp_size) + " ways");
  }
  const Binder b(ckpt);
  Weights w;
  DSA_TRY(embed, b.bf16_matrix("model.embed_tokens.weight", cfg.vocab_size, cfg.hidden_size));
  DSA_TRY(norm, b.vec("model.norm.weight", cfg.hidden_size));
  DSA_TRY(head, b.bf16_matrix("lm_head.weight", cfg.vocab_size, cfg.hidden_size));
  w.embed_tokens = embed.w;
  w.embed_rows = cfg.vocab_size;
  w.norm = std::move(norm);
  w.lm_head = head;
  if (cfg.splits_vocab(tp_size)) {
    const int64_t rows = cfg.vocab_size / tp_size;
    w.lm_head = Bf16Matrix{head.w + tp_rank * rows * head.k, rows, head.k};
    w.embed_tokens = embed.w + tp_rank * rows * cfg.hidden_size;
    w.embed_first = tp_rank * rows;
    w.embed_rows = rows;
  }
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    DSA_TRY(lw, bind_layer(b, cfg, layer, tp_rank, tp_size));
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace dsa
