// Multi-head latent attention with the lightning indexer (model-spec 4.3, 5): projections, the
// latent and indexer-key caches, the per-query top-k selection, and attention over the selected
// keys only: the MHA form for chunks (S > 1; queries in groups whose selected keys, expanded by
// kv_b_proj, fit the prefill key limit), the absorbed MQA form for decode rows (one token of each
// sequence in the batch).
#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/model/model.hpp"
#include "engine/model/forward_checks.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/hadamard.hpp"
#include "kernels/cpu/indexer.hpp"
#include "kernels/cpu/norm.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/rope.hpp"
#include "kernels/cpu/topk.hpp"

namespace dsa {

void Model::attention(int64_t layer, KvCache& cache, int64_t S, bool decode, float* out, ForwardTrace* trace) {
  mla_project(layer, cache, S);
  indexer(layer, cache, S, trace);
  {
    PhaseScope timed(phase_times_, Phase::attention);
    if (decode) {
      attend_decode(layer, cache, S);
    } else {
      attend_prefill(layer, cache, *ws_.row_seq[0], S);
    }
  }
  PhaseScope timed(phase_times_, Phase::projections);
  const int64_t width = n_heads_ * cfg_.v_head_dim;
  const float* o = ws_.o.data();
  if (comm_->size() > 1) {
    gather_columns(o, S, width, ws_.o_full.data());
    o = ws_.o_full.data();
  }
  project_to_hidden(w_.layers[layer].o_proj, o, S, out);
}

void Model::mla_project(int64_t layer, KvCache& cache, int64_t S) {
  PhaseScope timed(phase_times_, Phase::projections);
  const LayerWeights& lw = w_.layers[layer];
  const int64_t H = n_heads_, dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim, dqk = dn + dr;
  const int64_t kvr = cfg_.kv_lora_rank;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const int64_t* pos = ws_.pos.data();

  float* qr = ws_.qr.data();
  lw.q_a_proj.apply(ws_.xn.data(), S, qr);
  cpu::rms_norm(qr, S, cfg_.q_lora_rank, lw.q_a_layernorm.data(), eps, qr);
  float* q = ws_.q.data();  // [S, H, nope | rope]
  lw.q_b_proj.apply(qr, S, q);
  cpu::apply_rope(q + dn, S, H, H * dqk, dqk, dr, pos, inv_freq_.data(), cpu::RopeLayout::interleaved);

  float* kv = ws_.kv.data();  // [S, latent | rope]
  float* c_kv = ws_.c_kv.data();
  float* k_pe = ws_.k_pe.data();
  lw.kv_a_proj_with_mqa.apply(ws_.xn.data(), S, kv);
  for (int64_t i = 0; i < S; ++i) {
    std::copy(kv + i * (kvr + dr), kv + i * (kvr + dr) + kvr, c_kv + i * kvr);
    std::copy(kv + i * (kvr + dr) + kvr, kv + (i + 1) * (kvr + dr), k_pe + i * dr);
  }
  cpu::rms_norm(c_kv, S, kvr, lw.kv_a_layernorm.data(), eps, c_kv);
  cpu::apply_rope(k_pe, S, 1, dr, dr, dr, pos, inv_freq_.data(), cpu::RopeLayout::interleaved);
  for (int64_t i = 0; i < S; ++i) {
    cpu::latent_write(cache.latent_arena(layer), ws_.row_seq[i]->pages.data(), cache.format(), kvr, dr, pos[i],
                      c_kv + i * kvr, k_pe + i * dr);
  }
}

void Model::indexer(int64_t layer, KvCache& cache, int64_t S, ForwardTrace* trace) {
  {
    PhaseScope timed(phase_times_, Phase::indexer);
    write_index_keys(layer, cache, S);
    // Dense attention needs the queries only to record the indexer's choice.
    if (mode_ == AttentionMode::sparse || trace) score_queries(layer, S);
  }
  select_keys(layer, cache, S, trace);
}

void Model::write_index_keys(int64_t layer, KvCache& cache, int64_t S) {
  // LayerNorm, rotate-half RoPE on the first dims, Hadamard, FP8 into the cache.
  const LayerWeights& lw = w_.layers[layer];
  const int64_t hd = cfg_.index_head_dim, dr = cfg_.qk_rope_head_dim;
  const int64_t* pos = ws_.pos.data();
  const float rot_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  float* k = ws_.idx_k.data();  // [S, hd]
  lw.idx_wk.apply(ws_.xn.data(), S, k);
  cpu::layer_norm(k, S, hd, lw.idx_k_norm_weight.data(), lw.idx_k_norm_bias.data(),
                  static_cast<float>(cfg_.rms_norm_eps), k);
  cpu::apply_rope(k, S, 1, hd, hd, dr, pos, inv_freq_.data(), cpu::RopeLayout::rotate_half);
  cpu::hadamard(k, S, hd, rot_scale, k);
  for (int64_t i = 0; i < S; ++i) {
    cpu::indexer_write(cache.indexer_arena(layer), ws_.row_seq[i]->pages.data(), hd, pos[i], k + i * hd);
  }
}

void Model::score_queries(int64_t layer, int64_t S) {
  const LayerWeights& lw = w_.layers[layer];
  const int64_t nh = cfg_.index_n_heads, hd = cfg_.index_head_dim, dr = cfg_.qk_rope_head_dim;
  const int64_t* pos = ws_.pos.data();
  const float rot_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  // Queries from the MLA q latent, one FP8 scale per (token, head) (block = hd <= 128).
  float* q = ws_.idx_q.data();  // [S, nh, hd]
  lw.idx_wq_b.apply(ws_.qr.data(), S, q);
  cpu::apply_rope(q, S, nh, nh * hd, hd, dr, pos, inv_freq_.data(), cpu::RopeLayout::rotate_half);
  cpu::hadamard(q, S * nh, hd, rot_scale, q);
  uint8_t* q_codes = ws_.idx_q_codes.data();
  float* q_scale = ws_.idx_q_scale.data();
  for (int64_t r = 0; r < S * nh; ++r) cpu::act_quant(q + r * hd, hd, hd, q_codes + r * hd, q_scale + r);

  // Head weights with every constant folded in, in the reference's order.
  float* w = ws_.idx_w.data();  // [S, nh]
  lw.idx_weights_proj.apply(ws_.xn.data(), S, w);
  const auto head_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(nh)));
  cpu::indexer_fold_weights(w, q_scale, S * nh, head_scale, rot_scale);
}

void Model::select_keys(int64_t layer, const KvCache& cache, int64_t S, ForwardTrace* trace) {
  const int64_t stride = ws_.sel_stride;
  int64_t* n_keys = ws_.n_keys.data();
  int64_t* n_sel = ws_.n_sel.data();
  int32_t* sel = ws_.sel.data();
  int64_t end = 0;
  for (int64_t i = 0; i < S; ++i) {
    n_keys[i] = ws_.pos[i] + 1;
    end = std::max(end, n_keys[i]);
  }

  const bool run_indexer = mode_ == AttentionMode::sparse || trace;
  if (run_indexer) {
    float* scores = ws_.scores.data();  // [kIndexerScoreRows, end]
    const int64_t nh = cfg_.index_n_heads, hd = cfg_.index_head_dim, topk = cfg_.index_topk;
    bool one_row_each = S > 1 && S <= kIndexerScoreRows && S >= cpu::num_threads();
    for (int64_t i = 1; one_row_each && i < S; ++i) one_row_each = ws_.row_seq[i] != ws_.row_seq[i - 1];
    if (one_row_each) {
      // Batched decode: a sequence per task for the scores, then for the selection (each kernel then
      // runs on one thread), rather than splitting every short row over the threads.
      {
        PhaseScope timed(phase_times_, Phase::indexer);
        cpu::parallel_for(S, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            cpu::indexer_scores(ws_.idx_q_codes.data() + i * nh * hd, ws_.idx_w.data() + i * nh, 1, nh,
                                cache.indexer(layer, *ws_.row_seq[i]), n_keys + i, scores + i * end, end);
          }
        });
      }
      PhaseScope timed(phase_times_, Phase::topk);
      cpu::parallel_for(S, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          n_sel[i] = std::min(topk, n_keys[i]);
          cpu::topk_positions(scores + i * end, n_keys[i], n_sel[i], sel + i * stride);
        }
      });
    }
    // Runs of rows of the same sequence (a prefill chunk) are scored kIndexerScoreRows queries at a
    // time: each block reads the cache pages once, and the score buffer stays [block, end].
    for (int64_t g0 = 0, g1 = 0; g0 < S && !one_row_each; g0 = g1) {
      while (g1 < S && ws_.row_seq[g1] == ws_.row_seq[g0]) ++g1;
      const cpu::IndexerCacheView keys = cache.indexer(layer, *ws_.row_seq[g0]);
      for (int64_t b0 = g0; b0 < g1; b0 += kIndexerScoreRows) {
        const int64_t n_q = std::min(kIndexerScoreRows, g1 - b0);
        {
          PhaseScope timed(phase_times_, Phase::indexer);
          cpu::indexer_scores(ws_.idx_q_codes.data() + b0 * nh * hd, ws_.idx_w.data() + b0 * nh, n_q, nh, keys,
                              n_keys + b0, scores, end);
        }
        PhaseScope timed(phase_times_, Phase::topk);
        cpu::parallel_for(n_q, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            const int64_t i = b0 + r;
            n_sel[i] = std::min(topk, n_keys[i]);
            cpu::topk_positions(scores + r * end, n_keys[i], n_sel[i], sel + i * stride);
          }
        });
      }
    }
    if (trace) {
      auto& rec = trace->topk[layer];
      for (int64_t i = 0; i < S; ++i) rec.emplace_back(sel + i * stride, sel + i * stride + n_sel[i]);
    }
  }
  if (mode_ == AttentionMode::dense) {
    for (int64_t i = 0; i < S; ++i) {
      n_sel[i] = n_keys[i];
      for (int64_t j = 0; j < n_keys[i]; ++j) sel[i * stride + j] = static_cast<int32_t>(j);
    }
  }
  if (trace && trace->forced_topk) {
    const auto& forced = (*trace->forced_topk)[layer];
    DSA_CHECK(static_cast<int64_t>(forced.size()) == S, "forced_topk needs one selection per query");
    for (int64_t i = 0; i < S; ++i) {
      DSA_CHECK(static_cast<int64_t>(forced[i].size()) <= stride, "forced selection larger than index_topk");
      n_sel[i] = static_cast<int64_t>(forced[i].size());
      for (int64_t j = 0; j < n_sel[i]; ++j) {
        DSA_CHECK(forced[i][j] >= 0 && forced[i][j] < n_keys[i], "forced selection outside the causal keys");
        sel[i * stride + j] = forced[i][j];
      }
    }
  }
  if (trace) {
    for (int64_t i = 0; i < S; ++i) trace->keys_attended += n_sel[i];
  }
  if (check_topk_ && comm_->size() > 1) compare_selections(layer, S);
}

void Model::compare_selections(int64_t layer, int64_t S) {
  const uint64_t mine = selection_fingerprint(ws_.sel.data(), ws_.sel_stride, ws_.n_sel.data(), S);
  if (!ranks_agree(*comm_, mine) && topk_mismatch_layer_ < 0) topk_mismatch_layer_ = layer;
}

void Model::attend_prefill(int64_t layer, const KvCache& cache, const Sequence& seq, int64_t S) {
  const int64_t stride = ws_.sel_stride, end = ws_.pos[S - 1] + 1;
  // Queries go in groups whose union of selected keys fits the limit; each group's keys are
  // expanded (wkv_b) once, row r holding position key_pos[r]. key_row is -1 outside the group.
  const int64_t limit = std::max(prefill_key_limit_, stride);
  int32_t* key_row = ws_.key_row.data();
  int32_t* key_pos = ws_.key_pos.data();
  int32_t* sel_rows = ws_.sel_rows.data();
  std::fill(key_row, key_row + end, -1);
  int32_t n_rows = 0;
  int64_t q0 = 0;
  for (int64_t i = 0; i < S; ++i) {
    const int32_t* sel = ws_.sel.data() + i * stride;
    int64_t n_new = 0;
    for (int64_t j = 0; j < ws_.n_sel[i]; ++j) n_new += key_row[sel[j]] < 0;
    if (n_rows + n_new > limit) {  // never an empty group: one selection alone fits
      attend_prefill_group(layer, cache, seq, n_rows, q0, i);
      for (int32_t r = 0; r < n_rows; ++r) key_row[key_pos[r]] = -1;
      n_rows = 0;
      q0 = i;
    }
    for (int64_t j = 0; j < ws_.n_sel[i]; ++j) {
      const int32_t p = sel[j];
      if (key_row[p] < 0) {
        key_row[p] = n_rows;
        key_pos[n_rows++] = p;
      }
      sel_rows[i * stride + j] = key_row[p];
    }
  }
  attend_prefill_group(layer, cache, seq, n_rows, q0, S);
}

void Model::attend_prefill_group(int64_t layer, const KvCache& cache, const Sequence& seq, int32_t n_rows,
                                 int64_t q0, int64_t q1) {
  const LayerWeights& lw = w_.layers[layer];
  const int64_t H = n_heads_, dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim, dv = cfg_.v_head_dim;
  const int64_t kvr = cfg_.kv_lora_rank, stride = ws_.sel_stride;
  for (auto [v, width] : {std::pair{&ws_.key_latent, kvr}, {&ws_.key_pe, dr}, {&ws_.key_kv, H * (dn + dv)}}) {
    const auto n = static_cast<size_t>(n_rows * width);
    if (v->size() < n) {
      v->reserve(n);  // exactly: the key workspace is bounded by the group limit
      v->resize(n);
    }
  }
  float* latent = ws_.key_latent.data();
  float* pe = ws_.key_pe.data();
  const int32_t* key_pos = ws_.key_pos.data();
  for (int32_t r = 0; r < n_rows; ++r) cache.read_latent(layer, seq, key_pos[r], latent + r * kvr, pe + r * dr);
  float* key_kv = ws_.key_kv.data();  // [n_rows, H, nope | v]
  lw.kv_b_proj.apply(latent, n_rows, key_kv);

  const float* q = ws_.q.data();
  float* o = ws_.o.data();
  const int32_t* sel_rows = ws_.sel_rows.data();
  cpu::parallel_for(q1 - q0, [&](int64_t b, int64_t e) {
    for (int64_t i = q0 + b; i < q0 + e; ++i) {
      cpu::sparse_mha(q + i * H * (dn + dr), H, dn, dr, dv, key_kv, H * (dn + dv), pe, dr, sel_rows + i * stride,
                      ws_.n_sel[i], softmax_scale_, o + i * H * dv);
    }
  });
}

void Model::attend_decode(int64_t layer, const KvCache& cache, int64_t S) {
  const LayerWeights& lw = w_.layers[layer];
  const int64_t H = n_heads_, dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim, dv = cfg_.v_head_dim;
  const int64_t kvr = cfg_.kv_lora_rank, dqk = dn + dr;
  const float* q = ws_.q.data();    // [S, H, nope | rope]
  float* q_abs = ws_.q_abs.data();  // [S, H, kv_lora]: q_nope . W_UK, bf16
  float* q_pe = ws_.q_pe.data();    // [S, H, rope]
  // One product per head over all S rows (a batch over the heads, parallel over them), so each
  // head's W_UK / W_UV is read once per step.
  cpu::matmul_bf16_batched(q, H * dqk, dqk, S, dn, lw.w_uk_t.data(), dn, kvr * dn, kvr, q_abs, H * kvr, kvr, H, true);
  for (int64_t r = 0; r < S * H; ++r) std::copy(q + r * dqk + dn, q + (r + 1) * dqk, q_pe + r * dr);
  float* o_lat = ws_.o_lat.data();  // [S, H, kv_lora]
  // With enough sequences, one per thread: no selected record is decoded by two threads, as it is
  // when one sequence's heads are split.
  cpu::for_each_item(S, [&](int64_t i) {
    cpu::sparse_mla_decode(q_abs + i * H * kvr, q_pe + i * H * dr, H, cache.latent(layer, *ws_.row_seq[i]),
                           ws_.sel.data() + i * ws_.sel_stride, ws_.n_sel[i], softmax_scale_, o_lat + i * H * kvr);
  });
  float* o = ws_.o.data();  // [S, H, v]
  cpu::matmul_bf16_batched(o_lat, H * kvr, kvr, S, kvr, lw.w_uv.data(), kvr, dv * kvr, dv, o, H * dv, dv, H, true);
}

}  // namespace dsa
