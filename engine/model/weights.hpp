// Weights: every tensor of a DeepSeek-V3.2 checkpoint bound by name once at load, with
// expected-vs-actual dtype/shape errors. Pointers stay inside the read-only mmap of the Checkpoint
// (which must outlive the Weights); only the small vectors (norms, biases) are copied to fp32 and
// the absorbed-MLA factors of kv_b_proj are dequantised to bf16 once.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/config.hpp"

namespace dsa {

// One projection y[m,n] = x[m,k] . W[n,k]^T. FP8 (e4m3 with f32 scale_inv [ceil(n/128), ceil(k/128)])
// or BF16, decided at load; the output is bf16-rounded as the reference's linear() returns bf16.
struct Linear {
  const void* w = nullptr;
  const float* scale_inv = nullptr;  // non-null exactly when W is FP8
  int64_t n = 0, k = 0;
  void apply(const float* x, int64_t m, float* y) const;
  // Rows [start, start + count): a tensor-parallel shard. FP8 needs start % 128 == 0 (checked at bind).
  Linear rows(int64_t start, int64_t count) const;
};

// A raw bf16 matrix [n,k] consumed in fp32 without rounding the output (router, weights_proj, head).
struct Bf16Matrix {
  const uint16_t* w = nullptr;
  int64_t n = 0, k = 0;
  void apply(const float* x, int64_t m, float* y) const;
};

struct MlpWeights {
  Linear gate_proj, up_proj, down_proj;  // w1, w3, w2
};

struct LayerWeights {
  std::vector<float> input_layernorm, post_attention_layernorm;  // [hidden] fp32
  // MLA
  Linear q_a_proj, q_b_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj;
  std::vector<float> q_a_layernorm, kv_a_layernorm;
  // H below is this rank's heads (all of them without tensor parallelism).
  std::vector<uint16_t> w_uk_t;  // [H, kv_lora, qk_nope] bf16: W_UK[h]^T for the absorbed query
  std::vector<uint16_t> w_uv;    // [H, v_head, kv_lora] bf16: W_UV[h] for the absorbed output
  // Indexer
  Linear idx_wq_b, idx_wk;
  std::vector<float> idx_k_norm_weight, idx_k_norm_bias;  // [index_head_dim] fp32
  Bf16Matrix idx_weights_proj;                             // [index_n_heads, hidden]
  // FFN: dense MLP or MoE
  bool is_moe = false;
  MlpWeights mlp;                  // dense layers
  Bf16Matrix gate;                 // [n_routed_experts, hidden]
  std::vector<float> gate_bias;    // e_score_correction_bias, fp32
  std::vector<MlpWeights> experts;
  MlpWeights shared_experts;  // unbound (null weights) when the config has no shared experts
};

struct Weights {
  const uint16_t* embed_tokens = nullptr;   // [embed_rows, hidden] bf16: token ids from embed_first
  int64_t embed_first = 0, embed_rows = 0;  // all of them, or (vocabulary split) this rank's
  std::vector<float> norm;                 // [hidden]
  Bf16Matrix lm_head;                      // [vocab, hidden], or this rank's rows of it
  std::vector<LayerWeights> layers;
};

// Row id - embed_first of a rank's rows of the embedding [embed_first, embed_first + embed_rows), or
// -1 (a row of zeros: cpu::embed_rows) for another rank's token.
inline int32_t local_embed_id(int64_t embed_first, int64_t embed_rows, int32_t id) {
  const int64_t local = int64_t(id) - embed_first;
  return local >= 0 && local < embed_rows ? static_cast<int32_t>(local) : -1;
}

// Binds every tensor the config implies; the first missing or mismatched tensor is the error.
// With tp_size > 1, q_b_proj, kv_b_proj (and its absorbed factors) keep only this rank's
// num_attention_heads / tp_size heads, and the dense MLP's gate/up_proj only its
// intermediate_size / tp_size rows; an error when the split is uneven or cuts an FP8 scale block.
// Where cfg.splits_hidden_rows(tp_size), o_proj and the dense MLP's down_proj keep only this rank's
// hidden_size / tp_size output rows; where cfg.splits_vocab(tp_size), lm_head and the embedding
// their vocab_size / tp_size rows.
Result<Weights> bind_weights(const Checkpoint& ckpt, const ModelConfig& cfg, int tp_rank = 0, int tp_size = 1);

}  // namespace dsa
