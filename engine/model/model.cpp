// The block loop of the DeepSeek-V3.2 forward pass (model-spec 4.1): embedding, per layer
// attn_norm -> MLA -> ffn_norm (fused residual) -> MLP or MoE, then the final norm and the head.
// The attention is in mla.cpp, the FFN in moe.cpp.
#include <algorithm>
#include <string>
#include <utility>

#include "engine/model/model.hpp"
#include "engine/model/forward_checks.hpp"
#include "kernels/cpu/norm.hpp"
#include "kernels/cpu/rope.hpp"
#include "kernels/cpu/rows.hpp"

namespace dsa {

namespace {

template <class T>
void grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

}  // namespace

Result<std::unique_ptr<Model>> Model::load(const std::filesystem::path& dir, AttentionMode mode, Comm* comm) {
  const auto config_path = dir / "config.json";
  DSA_TRY(cfg, load_config(config_path));
  if (auto r = check_engine_limits(cfg, config_path.string()); !r) return r.error();
  DSA_TRY(ckpt, Checkpoint::open(dir));
  const int rank = comm ? comm->rank() : 0;
  const int size = comm ? comm->size() : 1;
  DSA_TRY(w, bind_weights(ckpt, cfg, rank, size));
  return std::make_unique<Model>(std::move(cfg), std::move(ckpt), std::move(w), mode, comm);
}

Model::Model(ModelConfig cfg, Checkpoint ckpt, Weights w, AttentionMode mode, Comm* comm)
    : cfg_(std::move(cfg)), ckpt_(std::move(ckpt)), w_(std::move(w)), mode_(mode), comm_(comm ? comm : &single_) {
  n_heads_ = cfg_.num_attention_heads / comm_->size();
  const RopeScaling& rs = cfg_.rope_scaling;
  inv_freq_ = cpu::yarn_inv_freq(cfg_.qk_rope_head_dim, cfg_.rope_theta, rs.factor,
                                 rs.original_max_position_embeddings, rs.beta_fast, rs.beta_slow);
  softmax_scale_ = static_cast<float>(cfg_.softmax_scale());
  prefill_key_limit_ = 4 * cfg_.index_topk;
}

size_t Model::prefill_key_bytes() const {
  return (ws_.key_latent.capacity() + ws_.key_pe.capacity() + ws_.key_kv.capacity()) * sizeof(float);
}

void Model::ensure_workspace(int64_t S, int64_t end, bool decode) {
  const ModelConfig& c = cfg_;
  const int64_t D = c.hidden_size, H = n_heads_, dqk = c.qk_head_dim(), dv = c.v_head_dim;
  const int64_t kvr = c.kv_lora_rank, dr = c.qk_rope_head_dim;
  const int64_t nh = c.index_n_heads, hd = c.index_head_dim;
  Workspace& ws = ws_;
  grow(ws.pos, S);
  grow(ws.row_seq, S);
  for (auto* v : {&ws.x, &ws.xn, &ws.residual, &ws.attn_out}) grow(*v, S * D);
  grow(ws.qr, S * c.q_lora_rank);
  grow(ws.q, S * H * dqk);
  grow(ws.kv, S * (kvr + dr));
  grow(ws.c_kv, S * kvr);
  grow(ws.k_pe, S * dr);
  grow(ws.o, S * H * dv);
  grow(ws.o_full, S * c.num_attention_heads * dv);
  if (decode) {
    grow(ws.q_abs, S * H * kvr);
    grow(ws.q_pe, S * H * dr);
    grow(ws.o_lat, S * H * kvr);
  }
  grow(ws.key_row, end);  // the expanded keys themselves grow in attend_prefill, to what is selected
  grow(ws.key_pos, end);
  grow(ws.idx_q, S * nh * hd);
  grow(ws.idx_k, S * hd);
  grow(ws.idx_w, S * nh);
  grow(ws.idx_q_scale, S * nh);
  grow(ws.idx_q_codes, S * nh * hd);
  grow(ws.scores, std::min(S, kIndexerScoreRows) * end);
  grow(ws.n_keys, S);
  ws.sel_stride = std::min(c.index_topk, end);
  if (mode_ == AttentionMode::dense) ws.sel_stride = end;
  grow(ws.sel, S * ws.sel_stride);
  grow(ws.sel_rows, S * ws.sel_stride);
  grow(ws.n_sel, S);
  const int64_t inter =
      std::max(c.intermediate_size, c.moe_intermediate_size * std::max<int64_t>(1, c.n_shared_experts));
  const int64_t K = c.num_experts_per_tok;
  // The FFN buffers also hold the routed experts' rows side by side: S * K rows of moe_intermediate.
  const int64_t ffn_floats = std::max(S * inter, S * K * c.moe_intermediate_size);
  for (auto* v : {&ws.gate, &ws.up, &ws.act, &ws.act_full}) grow(*v, ffn_floats);
  grow(ws.router_logits, S * c.n_routed_experts);
  grow(ws.route_w, S * K);
  grow(ws.route_idx, S * K);
  grow(ws.slot_row, S * K);
  grow(ws.expert_x, S * K * D);
  grow(ws.expert_y, S * K * D);
  grow(ws.shared_out, S * D);
  const int64_t head_rows = decode ? S : 1;  // rows whose logits head() computes
  grow(ws.gathered,
       std::max(S * std::max({c.num_attention_heads * dv, inter, c.hidden_size}), head_rows * c.vocab_size));
  grow(ws.hidden_local, S * c.hidden_size);
  if (w_.lm_head.n != c.vocab_size) grow(ws.logits_local, head_rows * w_.lm_head.n);
}

void Model::embed(std::span<const int32_t> tokens) {
  const auto S = static_cast<int64_t>(tokens.size());
  if (w_.embed_rows == cfg_.vocab_size) {
    cpu::embed_rows(w_.embed_tokens, cfg_.hidden_size, tokens.data(), S, ws_.x.data());
    return;
  }
  // The vocabulary is split over the ranks: each rank's rows of the tokens it holds, zeros for the
  // others' (id -1), summed over the ranks: exact, all other terms being zeros (a -0.0 comes out
  // +0.0, which changes nothing downstream).
  std::vector<int32_t>& local = ws_.local_ids;
  local.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) local[i] = local_embed_id(w_.embed_first, w_.embed_rows, tokens[i]);
  cpu::embed_rows(w_.embed_tokens, cfg_.hidden_size, local.data(), S, ws_.x.data());
  comm_->all_reduce_sum(ws_.x.data(), S * cfg_.hidden_size);
}

Result<void> Model::forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                            ForwardTrace* trace) {
  const int64_t S = static_cast<int64_t>(tokens.size());
  if (S == 0) return make_error("forward: no tokens");
  if (auto r = check_tokens(tokens, cfg_.vocab_size); !r) return r.error();
  const int64_t pos0 = seq.n_cached, end = pos0 + S;
  if (auto r = check_position(end, cfg_.max_position_embeddings); !r) return r.error();
  if (auto r = cache.reserve(seq, end); !r) return r.error();
  start_trace(trace, cfg_.num_hidden_layers);
  ensure_workspace(S, end, /*decode=*/S == 1);
  for (int64_t i = 0; i < S; ++i) {
    ws_.pos[i] = pos0 + i;
    ws_.row_seq[i] = &seq;
  }
  embed(tokens);
  run_layers(cache, S, /*decode=*/S == 1, trace);
  if (auto r = check_selections_agreed(); !r) return r.error();
  seq.n_cached = end;
  head(S - 1, 1, logits);
  return {};
}

Result<void> Model::forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs, std::span<const int32_t> tokens,
                                         float* logits, ForwardTrace* trace) {
  const int64_t B = static_cast<int64_t>(seqs.size());
  DSA_TRY(end, check_decode_batch(seqs, tokens, cfg_));
  for (Sequence* seq : seqs) {
    if (auto r = cache.reserve(*seq, seq->n_cached + 1); !r) return r.error();
  }
  start_trace(trace, cfg_.num_hidden_layers);
  ensure_workspace(B, end, /*decode=*/true);
  for (int64_t b = 0; b < B; ++b) {
    ws_.pos[b] = seqs[b]->n_cached;
    ws_.row_seq[b] = seqs[b];
  }
  embed(tokens);
  run_layers(cache, B, /*decode=*/true, trace);
  if (auto r = check_selections_agreed(); !r) return r.error();
  for (Sequence* seq : seqs) ++seq->n_cached;
  head(0, B, logits);
  return {};
}

Result<void> Model::check_selections_agreed() const {
  if (topk_mismatch_layer_ < 0) return {};
  return topk_mismatch_error(topk_mismatch_layer_);
}

void Model::run_layers(KvCache& cache, int64_t S, bool decode, ForwardTrace* trace) {
  topk_mismatch_layer_ = -1;
  const int64_t L = cfg_.num_hidden_layers, D = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  float* x = ws_.x.data();
  float* xn = ws_.xn.data();
  float* residual = ws_.residual.data();
  for (int64_t layer = 0; layer < L; ++layer) {
    const LayerWeights& lw = w_.layers[layer];
    if (layer == 0) {
      std::copy(x, x + S * D, residual);
      cpu::rms_norm(x, S, D, lw.input_layernorm.data(), eps, xn);
    } else {
      cpu::add_rms_norm(x, residual, S, D, lw.input_layernorm.data(), eps, xn);
    }
    attention(layer, cache, S, decode, ws_.attn_out.data(), trace);
    cpu::add_rms_norm(ws_.attn_out.data(), residual, S, D, lw.post_attention_layernorm.data(), eps, xn);
    if (lw.is_moe) {
      PhaseScope timed(phase_times_, Phase::moe);
      moe(layer, lw, xn, S, x);
    } else {
      PhaseScope timed(phase_times_, Phase::mlp);
      mlp(lw.mlp, xn, S, x, /*sharded=*/true);
    }
    if (trace) {
      auto& h = trace->hidden[layer];
      h.resize(static_cast<size_t>(S * D));
      for (int64_t j = 0; j < S * D; ++j) h[j] = x[j] + residual[j];
    }
  }
}

void Model::head(int64_t first, int64_t n, float* logits) {
  // Final norm of the unrounded x + residual, then the fp32 head.
  PhaseScope timed(phase_times_, Phase::lm_head);
  const int64_t D = cfg_.hidden_size;
  float* h = ws_.xn.data() + first * D;
  cpu::add_rms_norm(ws_.x.data() + first * D, ws_.residual.data() + first * D, n, D, w_.norm.data(),
                    static_cast<float>(cfg_.rms_norm_eps), h);
  if (w_.lm_head.n == cfg_.vocab_size) {
    w_.lm_head.apply(h, n, logits);
    return;
  }
  // The vocabulary is split over the ranks: this rank's logits, then every rank's gathered.
  w_.lm_head.apply(h, n, ws_.logits_local.data());
  gather_columns(ws_.logits_local.data(), n, w_.lm_head.n, logits);
}

void Model::project_to_hidden(const Linear& l, const float* x, int64_t S, float* out) {
  if (l.n == cfg_.hidden_size) {
    l.apply(x, S, out);
    return;
  }
  l.apply(x, S, ws_.hidden_local.data());
  gather_columns(ws_.hidden_local.data(), S, l.n, out);
}

void Model::gather_columns(const float* local, int64_t S, int64_t width, float* full) {
  const int64_t n = comm_->size();
  if (n == 1) {
    std::copy(local, local + S * width, full);
    return;
  }
  float* all = ws_.gathered.data();  // [rank][S, width]
  comm_->all_gather(local, S * width, all);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < S; ++i) {
      const float* src = all + (r * S + i) * width;
      std::copy(src, src + width, full + i * n * width + r * width);
    }
  }
}

}  // namespace dsa
