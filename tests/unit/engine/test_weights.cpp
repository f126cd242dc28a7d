// Weight binding on the tiny checkpoints: formats, absorbed MLA factors, tensor-parallel slices,
// and expected-vs-actual errors that name the tensor.
#include <doctest/doctest.h>

#include "engine/model/weights.hpp"
#include "kernels/dtypes.hpp"
#include "tests/test_support.hpp"

namespace dsa::test {
namespace {

struct Tiny {
  ModelConfig cfg;
  Checkpoint ckpt;
};

Tiny open_tiny(const std::string& fmt) {
  const auto dir = fixtures_dir() / "engine" / ("tiny-" + fmt);
  auto cfg = load_config(dir / "config.json");
  REQUIRE(cfg.ok());
  auto ckpt = Checkpoint::open(dir);
  REQUIRE(ckpt.ok());
  return Tiny{cfg.value(), std::move(ckpt.value())};
}

// kv_b_proj element (row, col) as the reference dequantises it: bf16(e4m3 * scale_inv) or bf16.
float kv_b_at(const Checkpoint& ckpt, int64_t layer, int64_t row, int64_t col) {
  const std::string name = "model.layers." + std::to_string(layer) + ".self_attn.kv_b_proj.weight";
  const TensorInfo* w = ckpt.find(name);
  const int64_t k = w->shape[1];
  if (w->dtype == DType::BF16) return bf16_to_float(reinterpret_cast<const uint16_t*>(w->data)[row * k + col]);
  const TensorInfo* s = ckpt.find(name + "_scale_inv");
  const float scale = reinterpret_cast<const float*>(s->data)[(row / 128) * s->shape[1] + col / 128];
  return round_bf16(fp8_e4m3_to_float(reinterpret_cast<const uint8_t*>(w->data)[row * k + col]) * scale);
}

TEST_CASE("binds every tensor of the tiny checkpoints in their format") {
  for (const std::string fmt : {"fp8", "bf16"}) {
    Tiny t = open_tiny(fmt);
    auto w = bind_weights(t.ckpt, t.cfg);
    REQUIRE_MESSAGE(w.ok(), w.error().message);
    REQUIRE(int64_t(w->layers.size()) == t.cfg.num_hidden_layers);
    CHECK_FALSE(w->layers[0].is_moe);
    CHECK(w->layers[1].is_moe);
    CHECK(int64_t(w->layers[1].experts.size()) == t.cfg.n_routed_experts);
    CHECK((w->layers[0].q_a_proj.scale_inv != nullptr) == (fmt == "fp8"));
    CHECK((w->layers[2].experts[7].down_proj.scale_inv != nullptr) == (fmt == "fp8"));
    CHECK(w->layers[0].idx_k_norm_bias.size() == size_t(t.cfg.index_head_dim));

    // Absorbed factors: W_UK[h]^T and W_UV[h] from rows h*(nope+v) .. of kv_b_proj.
    const int64_t dn = t.cfg.qk_nope_head_dim, dv = t.cfg.v_head_dim, c = t.cfg.kv_lora_rank;
    const LayerWeights& lw = w->layers[2];
    for (int64_t h : {0, 3}) {
      for (int64_t j : {0, 5, 127}) {
        for (int64_t d : {0, 17, 31}) {
          CHECK(bf16_to_float(lw.w_uk_t[(h * c + j) * dn + d]) == kv_b_at(t.ckpt, 2, h * (dn + dv) + d, j));
          CHECK(bf16_to_float(lw.w_uv[(h * dv + d) * c + j]) == kv_b_at(t.ckpt, 2, h * (dn + dv) + dn + d, j));
        }
      }
    }
  }
}

TEST_CASE("tensor-parallel ranks keep their own heads and MLP rows") {
  Tiny t = open_tiny("fp8");
  auto full = bind_weights(t.ckpt, t.cfg);
  auto r1 = bind_weights(t.ckpt, t.cfg, 1, 2);
  REQUIRE(full.ok());
  REQUIRE_MESSAGE(r1.ok(), r1.error().message);
  const LayerWeights &f = full->layers[0], &s = r1->layers[0];
  const int64_t H = t.cfg.num_attention_heads, dqk = t.cfg.qk_head_dim();
  CHECK(s.q_b_proj.n == H / 2 * dqk);
  CHECK(s.q_b_proj.w == static_cast<const uint8_t*>(f.q_b_proj.w) + H / 2 * dqk * f.q_b_proj.k);
  CHECK(s.q_b_proj.scale_inv == f.q_b_proj.scale_inv + (H / 2 * dqk / 128) * 1);
  CHECK(s.mlp.gate_proj.n == t.cfg.intermediate_size / 2);
  // 64 hidden rows per rank would cut a 128-row scale block: o_proj and down_proj stay whole.
  CHECK(s.mlp.down_proj.n == t.cfg.hidden_size);
  CHECK(s.o_proj.n == t.cfg.hidden_size);
  CHECK(s.o_proj.k == H * t.cfg.v_head_dim);
  const size_t half = f.w_uk_t.size() / 2;
  REQUIRE(s.w_uk_t.size() == half);
  CHECK(std::equal(s.w_uk_t.begin(), s.w_uk_t.end(), f.w_uk_t.begin() + long(half)));

  auto r4 = bind_weights(t.ckpt, t.cfg, 0, 4);  // 64-row slices would cut FP8 scale blocks
  REQUIRE_FALSE(r4.ok());
  CHECK(r4.error().message.find("q_b_proj.weight") != std::string::npos);
  CHECK(r4.error().message.find("scale block") != std::string::npos);
  Tiny b = open_tiny("bf16");
  // bf16 has no blocks to respect: o_proj and the dense down_proj keep their rank's output rows.
  auto b_full = bind_weights(b.ckpt, b.cfg);
  auto b1 = bind_weights(b.ckpt, b.cfg, 1, 2);
  REQUIRE(b_full.ok());
  REQUIRE(b1.ok());
  const int64_t half_d = b.cfg.hidden_size / 2;
  CHECK(b1->layers[0].o_proj.n == half_d);
  CHECK(b1->layers[0].o_proj.w ==
        static_cast<const uint16_t*>(b_full->layers[0].o_proj.w) + half_d * H * b.cfg.v_head_dim);
  CHECK(b1->layers[0].mlp.down_proj.n == half_d);
  CHECK(b1->layers[1].shared_experts.down_proj.n == b.cfg.hidden_size);  // the shared experts are whole
  // lm_head and the embedding: the rank's vocabulary rows (either format).
  const int64_t half_v = b.cfg.vocab_size / 2;
  CHECK(b1->lm_head.n == half_v);
  CHECK(b1->lm_head.w == b_full->lm_head.w + half_v * b.cfg.hidden_size);
  CHECK(b_full->embed_rows == b.cfg.vocab_size);
  CHECK(b1->embed_first == half_v);
  CHECK(b1->embed_rows == half_v);
  CHECK(b1->embed_tokens == b_full->embed_tokens + half_v * b.cfg.hidden_size);
  CHECK(local_embed_id(b1->embed_first, b1->embed_rows, int32_t(half_v + 5)) == 5);
  CHECK(local_embed_id(b1->embed_first, b1->embed_rows, 5) == -1);
  CHECK(r1->lm_head.n == t.cfg.vocab_size / 2);
  CHECK(bind_weights(b.ckpt, b.cfg, 3, 4).ok());
  CHECK_FALSE(bind_weights(b.ckpt, b.cfg, 0, 3).ok());
}

TEST_CASE("a checkpoint that does not match the config is an error naming the tensor") {
  Tiny t = open_tiny("fp8");
  ModelConfig c = t.cfg;
  c.q_lora_rank = 64;
  auto r = bind_weights(t.ckpt, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message ==
        "checkpoint: tensor model.layers.0.self_attn.q_a_proj.weight: expected F8_E4M3 [64, 128], got F8_E4M3 "
        "[128, 128]");

  c = t.cfg;
  c.fp8 = false;  // the config says BF16, the file holds FP8
  r = bind_weights(t.ckpt, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("expected BF16 [128, 128], got F8_E4M3 [128, 128]") != std::string::npos);

  c = t.cfg;
  c.num_hidden_layers = 4;
  r = bind_weights(t.ckpt, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("missing tensor model.layers.3.input_layernorm.weight") != std::string::npos);
}

}  // namespace
}  // namespace dsa::test
