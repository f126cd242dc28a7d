// BackendModel's attention (mla.cpp's, as backend ops): projections and the latent cache, the
// indexer keys, queries and top-k selection, and the absorbed-form attention of every row over its
// selected latent records.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/model/backend_model.hpp"
#include "engine/model/forward_checks.hpp"

namespace dsa {

void BackendModel::attention(int64_t layer, KvCache& cache, float* out, ForwardTrace* trace) {
  mla_project(layer, cache);
  write_index_keys(layer, cache);
  if (mode_ == AttentionMode::sparse || trace) score_queries(layer);
  select_keys(layer, cache, trace);
  attend(layer, cache);
  const int64_t width = n_heads_ * cfg_.v_head_dim;
  const float* o = ws_.o.data();
  if (comm_->size() > 1) {
    gather_columns(o, S_, width, ws_.o_full.data());
    o = ws_.o_full.data();
  }
  project_to_hidden(layers_[layer].o_proj, o, S_, out);
}

void BackendModel::mla_project(int64_t layer, KvCache& cache) {
  Backend& be = *be_;
  const Layer& lw = layers_[layer];
  const int64_t S = S_, H = n_heads_, dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim, dqk = dn + dr;
  const int64_t kvr = cfg_.kv_lora_rank;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const int64_t* pos = ws_.pos.data();

  float* qr = ws_.qr.data();
  linear(lw.q_a_proj, ws_.xn.data(), S, qr);
  be.rms_norm(qr, S, cfg_.q_lora_rank, lw.q_a_norm, eps, qr);
  float* q = ws_.q.data();  // [S, H, nope | rope]
  linear(lw.q_b_proj, qr, S, q);
  be.apply_rope(q + dn, S, H, H * dqk, dqk, dr, pos, inv_freq_, cpu::RopeLayout::interleaved);

  float* kv = ws_.kv.data();  // [S, latent | rope]
  float* c_kv = ws_.c_kv.data();
  float* k_pe = ws_.k_pe.data();
  linear(lw.kv_a_proj, ws_.xn.data(), S, kv);
  const size_t f = sizeof(float);
  be.copy_rows(c_kv, kvr * f, kv, (kvr + dr) * f, kvr * f, static_cast<size_t>(S));
  be.copy_rows(k_pe, dr * f, kv + kvr, (kvr + dr) * f, dr * f, static_cast<size_t>(S));
  be.rms_norm(c_kv, S, kvr, lw.kv_a_norm, eps, c_kv);
  be.apply_rope(k_pe, S, 1, dr, dr, dr, pos, inv_freq_, cpu::RopeLayout::interleaved);
  // One write per run of rows of the same sequence.
  for (int64_t i0 = 0, i1 = 0; i0 < S; i0 = i1) {
    while (i1 < S && slot_[i1] == slot_[i0]) ++i1;
    be.latent_write(cache.latent_arena(layer), ws_.pages.data() + slot_[i0] * max_pages_, cache.format(), kvr, dr,
                    i1 - i0, pos + i0, c_kv + i0 * kvr, k_pe + i0 * dr);
  }
}

void BackendModel::write_index_keys(int64_t layer, KvCache& cache) {
  Backend& be = *be_;
  const Layer& lw = layers_[layer];
  const int64_t S = S_, hd = cfg_.index_head_dim, dr = cfg_.qk_rope_head_dim;
  const int64_t* pos = ws_.pos.data();
  const float rot_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  float* k = ws_.idx_k.data();  // [S, hd]
  linear(lw.idx_wk, ws_.xn.data(), S, k);
  be.layer_norm(k, S, hd, lw.idx_k_norm_w, lw.idx_k_norm_b, static_cast<float>(cfg_.rms_norm_eps), k);
  be.apply_rope(k, S, 1, hd, hd, dr, pos, inv_freq_, cpu::RopeLayout::rotate_half);
  be.hadamard(k, S, hd, rot_scale, k);
  for (int64_t i0 = 0, i1 = 0; i0 < S; i0 = i1) {
    while (i1 < S && slot_[i1] == slot_[i0]) ++i1;
    be.indexer_write(cache.indexer_arena(layer), ws_.pages.data() + slot_[i0] * max_pages_, hd, i1 - i0, pos + i0,
                     k + i0 * hd);
  }
}

void BackendModel::score_queries(int64_t layer) {
  Backend& be = *be_;
  const Layer& lw = layers_[layer];
  const int64_t S = S_, nh = cfg_.index_n_heads, hd = cfg_.index_head_dim, dr = cfg_.qk_rope_head_dim;
  const float rot_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  float* q = ws_.idx_q.data();  // [S, nh, hd]
  linear(lw.idx_wq_b, ws_.qr.data(), S, q);
  be.apply_rope(q, S, nh, nh * hd, hd, dr, ws_.pos.data(), inv_freq_, cpu::RopeLayout::rotate_half);
  be.hadamard(q, S * nh, hd, rot_scale, q);
  be.act_quant(q, S * nh * hd, hd, ws_.idx_q_codes.data(), ws_.idx_q_scale.data());
  float* w = ws_.idx_w.data();  // [S, nh]
  matrix(lw.idx_weights_proj, ws_.xn.data(), S, w);
  const auto head_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(nh)));
  be.indexer_fold_weights(w, ws_.idx_q_scale.data(), S * nh, head_scale, rot_scale);
}

void BackendModel::select_keys(int64_t layer, KvCache& cache, ForwardTrace* trace) {
  Backend& be = *be_;
  const int64_t S = S_, stride = sel_stride_, nh = cfg_.index_n_heads, hd = cfg_.index_head_dim;
  int32_t* sel = ws_.sel.data();
  const bool run_indexer = mode_ == AttentionMode::sparse || trace;
  if (run_indexer) {
    float* scores = ws_.scores.data();  // [kScoreRows, span_]
    for (int64_t b0 = 0; b0 < S; b0 += kScoreRows) {
      const int64_t n_q = std::min(kScoreRows, S - b0);
      // A decode step's grid is its key span's (begin()), whatever its rows' contexts.
      int64_t max_keys = decode_ ? span_ : 0;
      for (int64_t i = b0; i < b0 + n_q; ++i) max_keys = std::max(max_keys, pos_[i] + 1);
      be.indexer_scores(ws_.idx_q_codes.data() + b0 * nh * hd, ws_.idx_w.data() + b0 * nh, nh,
                        indexer_view(cache, layer, b0), pages_stride_, n_q, ws_.n_valid.data() + b0, max_keys, scores,
                        span_);
      // Dense mode runs the indexer only to record its choice: its own top-k, within the wider rows.
      be.topk_positions(scores, span_, n_q, ws_.n_valid.data() + b0, std::min(cfg_.index_topk, stride),
                        sel + b0 * stride, stride);
    }
  }
  std::vector<int32_t> host;
  if (trace) {
    host.resize(static_cast<size_t>(S * stride));
    be.download(host.data(), sel, host.size() * sizeof(int32_t));
    auto& rec = trace->topk[layer];
    for (int64_t i = 0; i < S; ++i) {
      const int64_t n = std::min(cfg_.index_topk, pos_[i] + 1);
      rec.emplace_back(host.begin() + i * stride, host.begin() + i * stride + n);
    }
  }
  // What attention reads: the indexer's selection, every causal key (dense, made in begin()), or
  // the trace's forced selection.
  attend_sel_ = mode_ == AttentionMode::dense ? ws_.dense_sel.data() : sel;
  if (const TopkSets* forced = trace ? trace->forced_topk : nullptr) {
    host.assign(static_cast<size_t>(S * stride), -1);
    const auto& f = (*forced)[layer];
    DSA_CHECK(static_cast<int64_t>(f.size()) == S, "forced_topk needs one selection per query");
    for (int64_t i = 0; i < S; ++i) {
      DSA_CHECK(static_cast<int64_t>(f[i].size()) <= stride, "forced selection larger than index_topk");
      n_sel_[i] = static_cast<int64_t>(f[i].size());
      for (int64_t j = 0; j < n_sel_[i]; ++j) {
        DSA_CHECK(f[i][j] >= 0 && f[i][j] <= pos_[i], "forced selection outside the causal keys");
        host[i * stride + j] = f[i][j];
      }
    }
    be.upload(sel, host.data(), host.size() * sizeof(int32_t));
    upload_n_sel();
    attend_sel_ = sel;
  }
  if (trace) {
    for (int64_t i = 0; i < S; ++i) trace->keys_attended += n_sel_[i];
  }
  if (check_topk_ && comm_->size() > 1) {
    host.resize(static_cast<size_t>(S * stride));
    be.download(host.data(), attend_sel_, host.size() * sizeof(int32_t));
    const bool agreed = ranks_agree(*comm_, selection_fingerprint(host.data(), stride, n_sel_.data(), S));
    if (!agreed && topk_mismatch_layer_ < 0) topk_mismatch_layer_ = layer;
  }
}

void BackendModel::attend(int64_t layer, KvCache& cache) {
  // The absorbed form for every row: q_nope . W_UK, attention over the selected latents, . W_UV.
  Backend& be = *be_;
  const Layer& lw = layers_[layer];
  const int64_t S = S_, H = n_heads_, dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim, dv = cfg_.v_head_dim;
  const int64_t kvr = cfg_.kv_lora_rank, dqk = dn + dr;
  const float* q = ws_.q.data();    // [S, H, nope | rope]
  float* q_abs = ws_.q_abs.data();  // [S, H, kv_lora]
  float* q_pe = ws_.q_pe.data();    // [S, H, rope]
  // One launch for all heads each: q_abs[:, h] = q_nope[:, h] . W_UK[h], o[:, h] = o_lat[:, h] . W_UV[h].
  be.matmul_bf16_batched(q, H * dqk, dqk, S, dn, lw.w_uk_t, dn, kvr * dn, kvr, q_abs, H * kvr, kvr, H, true);
  const size_t f = sizeof(float);
  be.copy_rows(q_pe, dr * f, q + dn, dqk * f, dr * f, static_cast<size_t>(S * H));
  float* o_lat = ws_.o_lat.data();  // [S, H, kv_lora]
  // A decode step's bound is its selection stride (begin()), whatever its rows' contexts.
  const int64_t max_sel = decode_ ? sel_stride_ : *std::max_element(n_sel_.begin(), n_sel_.begin() + S);
  be.sparse_mla_decode(q_abs, q_pe, H, latent_view(cache, layer, 0), pages_stride_, S, attend_sel_, sel_stride_,
                       ws_.n_sel.data(), max_sel, softmax_scale_, o_lat);
  float* o = ws_.o.data();  // [S, H, v]
  be.matmul_bf16_batched(o_lat, H * kvr, kvr, S, kvr, lw.w_uv, kvr, dv * kvr, dv, o, H * dv, dv, H, true);
}

}  // namespace dsa
