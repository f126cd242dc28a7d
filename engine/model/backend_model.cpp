// BackendModel: loading (the memory check, the weights made resident), one call's set-up, the
// block loop and the head. The attention is in backend_mla.cpp, the FFN in backend_moe.cpp: Model's
// model.cpp, mla.cpp and moe.cpp as sequences of backend ops over backend buffers.
#include "engine/model/backend_model.hpp"

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

#include "engine/model/forward_checks.hpp"
#include "engine/model/rank_messages.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/rope.hpp"

namespace dsa {

namespace {

// A decode step's key span (BackendModel::kMinKeySpan): a power of two times min_span.
int64_t key_span(int64_t end, int64_t min_span) {
  int64_t span = min_span;
  while (span < end) span *= 2;
  return span;
}

size_t linear_bytes(const Linear& l) { return static_cast<size_t>(l.n * l.k) * (l.scale_inv ? 1 : 2); }

size_t scale_bytes(const Linear& l) {
  return static_cast<size_t>(((l.n + 127) / 128) * ((l.k + 127) / 128)) * sizeof(float);
}

}  // namespace

Result<std::unique_ptr<BackendModel>> BackendModel::load(const std::filesystem::path& dir, AttentionMode mode,
                                                         std::unique_ptr<Backend> backend, MemoryPlanOptions plan,
                                                         Comm* comm) {
  const auto config_path = dir / "config.json";
  DSA_TRY(cfg, load_config(config_path));
  if (auto r = check_engine_limits(cfg, config_path.string()); !r) return r.error();
  const int rank = comm ? comm->rank() : 0;
  const int size = comm ? comm->size() : 1;
  plan.ranks = size;
  plan.context = std::min(plan.context, cfg.max_position_embeddings);
  if (auto r = backend->supports(cfg); !r) return make_error(config_path.string() + ": " + r.error().message);
  DSA_TRY(need, plan_memory(cfg, plan));
  const size_t free = backend->available_memory();
  if (free != SIZE_MAX) {
    if (auto r = check_fits(need, free); !r) {
      return make_error(std::string(backend->name()) + ": " + dir.string() + " " + r.error().message);
    }
  }
  DSA_TRY(ckpt, Checkpoint::open(dir));
  DSA_TRY(w, bind_weights(ckpt, cfg, rank, size));
  try {
    return std::make_unique<BackendModel>(std::move(cfg), std::move(ckpt), std::move(w), mode, std::move(backend),
                                          comm);
  } catch (const std::bad_alloc&) {
    return make_error(dir.string() + ": the weights do not fit into the backend's memory");
  }
}

BackendModel::BackendModel(ModelConfig cfg, Checkpoint ckpt, Weights host, AttentionMode mode,
                           std::unique_ptr<Backend> backend, Comm* comm)
    : cfg_(std::move(cfg)),
      ckpt_(std::move(ckpt)),
      host_(std::move(host)),
      mode_(mode),
      be_(std::move(backend)),
      comm_(comm ? comm : &single_) {
  on_group_lost_ = [](const std::string& why) { ranks::group_lost(why); };
  n_heads_ = cfg_.num_attention_heads / comm_->size();
  softmax_scale_ = static_cast<float>(cfg_.softmax_scale());
  const RopeScaling& rs = cfg_.rope_scaling;
  inv_freq_host_ = cpu::yarn_inv_freq(cfg_.qk_rope_head_dim, cfg_.rope_theta, rs.factor,
                                      rs.original_max_position_embeddings, rs.beta_fast, rs.beta_slow);
  make_resident();
}

// --- weights ---

const float* BackendModel::resident(const std::vector<float>& v) {
  return static_cast<const float*>(be_->resident(v.data(), v.size() * sizeof(float)));
}

const uint16_t* BackendModel::resident(const std::vector<uint16_t>& v) {
  return static_cast<const uint16_t*>(be_->resident(v.data(), v.size() * sizeof(uint16_t)));
}

Linear BackendModel::resident(const Linear& l) {
  Linear out = l;
  if (!l.w) return out;
  out.w = be_->resident(l.w, linear_bytes(l));
  if (l.scale_inv) out.scale_inv = static_cast<const float*>(be_->resident(l.scale_inv, scale_bytes(l)));
  return out;
}

MlpWeights BackendModel::resident(const MlpWeights& m) {
  return MlpWeights{resident(m.gate_proj), resident(m.up_proj), resident(m.down_proj)};
}

void BackendModel::make_resident() {
  const int64_t D = cfg_.hidden_size;
  const auto resident_matrix = [this](const Bf16Matrix& m) {
    Bf16Matrix out = m;
    out.w = static_cast<const uint16_t*>(be_->resident(m.w, static_cast<size_t>(m.n * m.k) * sizeof(uint16_t)));
    return out;
  };
  embed_ = static_cast<const uint16_t*>(
      be_->resident(host_.embed_tokens, static_cast<size_t>(host_.embed_rows * D) * sizeof(uint16_t)));
  norm_ = resident(host_.norm);
  lm_head_ = resident_matrix(host_.lm_head);
  inv_freq_ = resident(inv_freq_host_);
  const int rank = comm_->rank(), n_ranks = comm_->size();
  for (const LayerWeights& h : host_.layers) {
    Layer l;
    l.input_norm = resident(h.input_layernorm);
    l.post_norm = resident(h.post_attention_layernorm);
    l.q_a_norm = resident(h.q_a_layernorm);
    l.kv_a_norm = resident(h.kv_a_layernorm);
    l.idx_k_norm_w = resident(h.idx_k_norm_weight);
    l.idx_k_norm_b = resident(h.idx_k_norm_bias);
    l.q_a_proj = resident(h.q_a_proj);
    l.q_b_proj = resident(h.q_b_proj);
    l.kv_a_proj = resident(h.kv_a_proj_with_mqa);
    l.o_proj = resident(h.o_proj);
    l.idx_wq_b = resident(h.idx_wq_b);
    l.idx_wk = resident(h.idx_wk);
    l.w_uk_t = resident(h.w_uk_t);
    l.w_uv = resident(h.w_uv);
    l.idx_weights_proj = resident_matrix(h.idx_weights_proj);
    l.is_moe = h.is_moe;
    if (h.is_moe) {
      l.gate = resident_matrix(h.gate);
      l.gate_bias = resident(h.gate_bias);
      l.experts.resize(h.experts.size());
      for (size_t e = 0; e < h.experts.size(); ++e) {
        if (static_cast<int>(e) % n_ranks == rank) l.experts[e] = resident(h.experts[e]);
      }
      if (!h.experts.empty() && h.experts[0].gate_proj.scale_inv) {
        for (int m = 0; m < 3; ++m) {
          std::vector<cpu::Fp8Matrix>& table = l.routed_host[m];
          table.assign(l.experts.size(), cpu::Fp8Matrix{});
          for (size_t e = 0; e < l.experts.size(); ++e) {
            const MlpWeights& w = l.experts[e];
            const Linear& lin = m == 0 ? w.gate_proj : m == 1 ? w.up_proj : w.down_proj;
            table[e] = cpu::Fp8Matrix{static_cast<const uint8_t*>(lin.w), lin.scale_inv};
          }
          l.routed[m] = static_cast<const cpu::Fp8Matrix*>(
              be_->resident(table.data(), table.size() * sizeof(cpu::Fp8Matrix)));
        }
      }
      if (l.routed[0]) {
        fp8_experts_ = true;
      } else {
        moe_on_device_ = false;
      }
      l.runs_shared = rank == cfg_.shared_experts_rank(static_cast<int64_t>(layers_.size()), n_ranks);
      if (l.runs_shared) l.shared_experts = resident(h.shared_experts);
    } else {
      l.mlp = resident(h.mlp);
    }
    layers_.push_back(std::move(l));
  }
}

void BackendModel::linear(const Linear& l, const float* x, int64_t m, float* y) {
  if (l.scale_inv) {
    be_->matmul_fp8(x, l.k, m, l.k, static_cast<const uint8_t*>(l.w), l.k, l.scale_inv, (l.k + 127) / 128, l.n, y,
                    l.n);
  } else {
    be_->matmul_bf16(x, l.k, m, l.k, static_cast<const uint16_t*>(l.w), l.k, l.n, y, l.n, /*round_out_bf16=*/true);
  }
}

void BackendModel::matrix(const Bf16Matrix& w, const float* x, int64_t m, float* y) {
  be_->matmul_bf16(x, w.k, m, w.k, w.w, w.k, w.n, y, w.n, /*round_out_bf16=*/false);
}

// --- one call ---

Result<void> BackendModel::forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                                   ForwardTrace* trace) {
  DSA_CHECK(cache.memory() == be_.get(), "the cache must live in the model's backend memory");
  const int64_t S = static_cast<int64_t>(tokens.size());
  if (S == 0) return make_error("forward: no tokens");
  if (auto r = check_tokens(tokens, cfg_.vocab_size); !r) return r.error();
  const int64_t end = seq.n_cached + S;
  if (auto r = check_position(end, cfg_.max_position_embeddings); !r) return r.error();
  const bool decode = S == 1;  // one token: a decode step of one sequence
  if (auto r = check_attention_keys(end, decode); !r) return r.error();
  if (auto r = cache.reserve(seq, end); !r) return r.error();
  Sequence* one[] = {&seq};
  if (auto r = begin(tokens, one, decode); !r) return r.error();
  if (auto r = compute_or_short(cache, trace, S - 1, 1); !r) return r.error();
  if (topk_mismatch_layer_ >= 0) return topk_mismatch_error(topk_mismatch_layer_);
  seq.n_cached = end;
  be_->download(logits, ws_.logits.data(), static_cast<size_t>(cfg_.vocab_size) * sizeof(float));
  return {};
}

Result<void> BackendModel::forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs,
                                                std::span<const int32_t> tokens, float* logits, ForwardTrace* trace) {
  DSA_CHECK(cache.memory() == be_.get(), "the cache must live in the model's backend memory");
  DSA_TRY(end, check_decode_batch(seqs, tokens, cfg_));
  if (auto r = check_attention_keys(end, /*decode=*/true); !r) return r.error();
  for (Sequence* seq : seqs) {
    if (auto r = cache.reserve(*seq, seq->n_cached + 1); !r) return r.error();
  }
  const auto S = static_cast<int64_t>(seqs.size());
  if (auto r = begin(tokens, seqs, /*decode=*/true); !r) return r.error();
  if (auto r = compute_or_short(cache, trace, 0, S); !r) return r.error();
  if (topk_mismatch_layer_ >= 0) return topk_mismatch_error(topk_mismatch_layer_);
  for (Sequence* seq : seqs) ++seq->n_cached;
  be_->download(logits, ws_.logits.data(), static_cast<size_t>(S * cfg_.vocab_size) * sizeof(float));
  return {};
}

Result<void> BackendModel::compute_or_short(KvCache& cache, ForwardTrace* trace, int64_t first, int64_t n) {
  try {
    compute(cache, trace, first, n);
    return {};
  } catch (const std::bad_alloc&) {
    // An op's scratch (a CUDA kernel's from the stream's pool, the CPU's quantised rows) did not
    // fit beside the workspace.
  }
  const int here[] = {comm_->rank()};
  Error e = workspace_error(S_, here);
  if (comm_->size() > 1) {
    // The other ranks are in, or on their way to, a collective this one will not join.
    on_group_lost_("rank " + std::to_string(comm_->rank()) + " ran out of " + be_->name() +
                   " memory in the middle of a forward of " + std::to_string(S_) +
                   " rows (try a smaller prefill chunk or fewer sequences)");
    return e;  // only where on_group_lost_ returns (tests)
  }
  // Alone: the call fails, and the buffers it grew are freed for the smaller call that follows.
  release_raised();
  return e;
}

void BackendModel::release_raised() {
  for (const Raise& r : raised_) {
    r.release();
    *r.granted = 0;
  }
  raised_.clear();
  recordings_.clear();  // they may point at the buffers freed
}

bool BackendModel::recordable(const ForwardTrace* trace) const {
  // The top-k check downloads the selections in every layer.
  const bool checks_topk = check_topk_ && comm_->size() > 1;
  return decode_ && recorded_decode_ && !trace && !checks_topk && mode_ == AttentionMode::sparse &&
         S_ <= kRoutedMaxTokens && moe_on_device_;
}

void BackendModel::compute(KvCache& cache, ForwardTrace* trace, int64_t first, int64_t n) {
  const auto ops = [&] {
    run_layers(cache, trace);
    head(first, n);
  };
  if (!recordable(trace)) return ops();
  // Every argument of the step's ops follows from the key: the rows' positions, page tables and
  // counts are read on the device, the grids and strides come from the key span.
  const auto key = std::make_tuple(cache.id(), S_, span_);
  auto it = recordings_.find(key);
  if (it == recordings_.end()) {
    if (recordings_.size() >= kMaxRecordings) {
      const auto oldest = std::min_element(recordings_.begin(), recordings_.end(), [](const auto& a, const auto& b) {
        return a.second.last_use < b.second.last_use;
      });
      recordings_.erase(oldest);
    }
    it = recordings_.emplace(key, Kept{be_->record(ops)}).first;
    ++counts_.recorded;
  }
  it->second.last_use = ++uses_;
  it->second.recording->replay();
  ++counts_.replayed;
}

Result<void> BackendModel::check_attention_keys(int64_t end, bool decode) const {
  // Every query attends to at most index_topk keys, or to its whole context in dense mode; a
  // sparse decode step's kernels are sized for its key span.
  const int64_t span = decode ? key_span(end, kMinKeySpan) : end;
  const int64_t keys = mode_ == AttentionMode::dense ? end : std::min(cfg_.index_topk, span);
  const int64_t limit = be_->max_selected_keys(cfg_.kv_lora_rank, cfg_.qk_rope_head_dim);
  if (keys <= limit) return {};
  return make_error("forward: " + std::string(mode_ == AttentionMode::dense ? "dense attention" : "attention") +
                    " over " + std::to_string(keys) + " keys; the " + be_->name() + " attention kernel takes at most " +
                    std::to_string(limit));
}

Error BackendModel::workspace_error(int64_t rows, std::span<const int> short_ranks) const {
  std::string where;
  if (comm_->size() > 1) {
    where = short_ranks.size() == 1 ? " on rank " : " on ranks ";
    for (size_t i = 0; i < short_ranks.size(); ++i) where += (i ? ", " : "") + std::to_string(short_ranks[i]);
  }
  Error e = make_error("forward: " + std::to_string(rows) + " rows do not fit into the " + std::string(be_->name()) +
                       " memory left for the workspace" + where + " (try a smaller prefill chunk or fewer sequences)");
  e.out_of_memory = true;
  return e;
}

Result<void> BackendModel::begin(std::span<const int32_t> tokens, std::span<Sequence* const> seqs, bool decode) {
  Backend& be = *be_;
  const ModelConfig& c = cfg_;
  const int64_t S = static_cast<int64_t>(tokens.size());
  const bool sparse = mode_ == AttentionMode::sparse;
  S_ = S;
  decode_ = decode;
  topk_mismatch_layer_ = -1;  // a replayed recording does not run run_layers, which sets it
  pos_.resize(static_cast<size_t>(S));
  slot_.resize(static_cast<size_t>(S));
  row_seq_.resize(static_cast<size_t>(S));
  end_ = 0;
  for (int64_t i = 0; i < S; ++i) {
    const int64_t b = decode ? i : 0;
    slot_[i] = b;
    row_seq_[i] = seqs[b];
    pos_[i] = seqs[b]->n_cached + (decode ? 0 : i);
    end_ = std::max(end_, pos_[i] + 1);
  }
  // A sparse decode step's shapes follow from its key span; the page tables are cut to the pages
  // the span's keys can be on (a sequence may hold pages reserved beyond its tokens).
  span_ = decode && sparse ? key_span(end_, kMinKeySpan) : end_;
  max_pages_ = 0;
  if (decode && sparse) {
    max_pages_ = (span_ + kPageTokens - 1) / kPageTokens;
  } else {
    for (const Sequence* seq : seqs) {
      max_pages_ = std::max<int64_t>(max_pages_, static_cast<int64_t>(seq->pages.size()));
    }
  }
  pages_stride_ = decode ? max_pages_ : 0;
  sel_stride_ = sparse ? std::min(c.index_topk, span_) : end_;

  // Workspace.
  const int64_t D = c.hidden_size, H = n_heads_, dqk = c.qk_head_dim(), dv = c.v_head_dim;
  const int64_t kvr = c.kv_lora_rank, dr = c.qk_rope_head_dim, nh = c.index_n_heads, hd = c.index_head_dim;
  const int64_t K = c.num_experts_per_tok;
  const int64_t inter =
      std::max(c.intermediate_size, c.moe_intermediate_size * std::max<int64_t>(1, c.n_shared_experts));
  const int64_t ffn = std::max(S * inter, S * K * c.moe_intermediate_size);
  Workspace& ws = ws_;
  // A buffer grows only past what every rank has been granted (granted_), and then the ranks agree
  // on success before any collective: a rank short of memory fails the call on every rank instead of
  // leaving the others waiting in the layers' first collective. A buffer's request is the call's
  // shape times a constant of the rank, so every rank asks past its grant in the same calls.
  std::vector<Raise>& raised = raised_;  // grants to raise once the ranks agree
  raised.clear();
  bool short_here = false;
  const auto grow = [&](Backend& be, auto& buffer, int64_t n) {
    const auto want = static_cast<size_t>(std::max<int64_t>(n, 1));
    size_t& granted = granted_[&buffer];
    if (want <= granted) return;
    raised.push_back({&granted, want, [&buffer] { buffer = {}; }});
    // A buffer may be reallocated, and the recordings point at the old one: they are dropped, on
    // every rank alike (a rank's graphs hold its collectives, which must pair with the others').
    recordings_.clear();
    if (short_here) return;
    try {
      buffer.grow(be, want);
    } catch (const std::bad_alloc&) {
      short_here = true;
    }
  };
  grow(be, ws.pos, S);
  grow(be, ws.ids, S);
  grow(be, ws.pages, static_cast<int64_t>(seqs.size()) * max_pages_);
  grow(be, ws.n_valid, S);
  grow(be, ws.n_sel, S);
  grow(be, ws.sel, S * sel_stride_);
  if (mode_ == AttentionMode::dense) grow(be, ws.dense_sel, S * sel_stride_);
  for (auto* b : {&ws.x, &ws.xn, &ws.residual, &ws.attn_out, &ws.shared_out}) grow(be, *b, S * D);
  grow(be, ws.qr, S * c.q_lora_rank);
  grow(be, ws.q, S * H * dqk);
  grow(be, ws.kv, S * (kvr + dr));
  grow(be, ws.c_kv, S * kvr);
  grow(be, ws.k_pe, S * dr);
  grow(be, ws.q_abs, S * H * kvr);
  grow(be, ws.q_pe, S * H * dr);
  grow(be, ws.o_lat, S * H * kvr);
  grow(be, ws.o, S * H * dv);
  grow(be, ws.o_full, S * c.num_attention_heads * dv);
  grow(be, ws.idx_q, S * nh * hd);
  grow(be, ws.idx_k, S * hd);
  grow(be, ws.idx_w, S * nh);
  grow(be, ws.idx_q_scale, S * nh);
  grow(be, ws.idx_q_codes, S * nh * hd);
  grow(be, ws.scores, std::min(S, kScoreRows) * span_);
  for (auto* b : {&ws.gate, &ws.up, &ws.act, &ws.act_full}) grow(be, *b, ffn);
  grow(be, ws.router_logits, S * c.n_routed_experts);
  grow(be, ws.route_w, S * K);
  grow(be, ws.route_idx, S * K);
  grow(be, ws.moe_maps, 2 * S * K + c.n_routed_experts + 1);
  if (S > kRoutedMaxTokens && fp8_experts_) {
    const int64_t codes = std::max(S * D, S * K * c.moe_intermediate_size);
    grow(be, ws.moe_codes, codes);
    grow(be, ws.moe_scales, codes / cpu::kQuantBlock);
  }
  if (!moe_on_device_) grow(be, ws.expert_x, S * K * D);
  grow(be, ws.expert_y, S * K * D);
  const int64_t head_rows = decode ? S : 1;
  grow(be, ws.gathered, std::max(S * std::max({c.num_attention_heads * dv, inter, D}), head_rows * c.vocab_size));
  grow(be, ws.hidden_local, S * D);
  grow(be, ws.logits, head_rows * c.vocab_size);
  if (lm_head_.n != c.vocab_size) grow(be, ws.logits_local, head_rows * lm_head_.n);
  if (!raised.empty()) {
    std::vector<int> short_ranks;
    if (comm_->size() > 1) {
      const float mine = short_here ? 1.0f : 0.0f;
      std::vector<float> all(static_cast<size_t>(comm_->size()));
      comm_->all_gather(&mine, 1, all.data());
      for (int r = 0; r < comm_->size(); ++r)
        if (all[size_t(r)] != 0.0f) short_ranks.push_back(r);
    } else if (short_here) {
      short_ranks.push_back(0);
    }
    if (!short_ranks.empty()) {
      // The buffers asked to grow are freed on every rank (their grants back to none), so that a
      // smaller call finds the memory the failed one took.
      release_raised();
      return workspace_error(S, short_ranks);
    }
    for (const Raise& r : raised) *r.granted = r.want;
  }

  // Inputs of the call.
  if (host_.embed_rows == c.vocab_size) {
    be.upload(ws.ids.data(), tokens.data(), static_cast<size_t>(S) * sizeof(int32_t));
  } else {
    // The vocabulary is split over the ranks: the tokens as rows of this rank's embedding share.
    host_i32_.resize(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i)
      host_i32_[size_t(i)] = local_embed_id(host_.embed_first, host_.embed_rows, tokens[size_t(i)]);
    be.upload(ws.ids.data(), host_i32_.data(), static_cast<size_t>(S) * sizeof(int32_t));
  }
  be.upload(ws.pos.data(), pos_.data(), static_cast<size_t>(S) * sizeof(int64_t));
  host_i32_.assign(seqs.size() * static_cast<size_t>(max_pages_), -1);
  for (size_t b = 0; b < seqs.size(); ++b) {
    const std::vector<int32_t>& pages = seqs[b]->pages;
    std::copy_n(pages.begin(), std::min<int64_t>(max_pages_, static_cast<int64_t>(pages.size())),
                host_i32_.begin() + static_cast<int64_t>(b) * max_pages_);
  }
  be.upload(ws.pages.data(), host_i32_.data(), host_i32_.size() * sizeof(int32_t));
  host_i32_.resize(static_cast<size_t>(S));
  n_sel_.resize(static_cast<size_t>(S));
  for (int64_t i = 0; i < S; ++i) {
    host_i32_[i] = static_cast<int32_t>(pos_[i] + 1);
    n_sel_[i] = std::min(sel_stride_, pos_[i] + 1);
  }
  be.upload(ws.n_valid.data(), host_i32_.data(), static_cast<size_t>(S) * sizeof(int32_t));
  if (mode_ == AttentionMode::dense) {
    // Every causal key, the same in every layer: uploaded once per call.
    host_i32_.assign(static_cast<size_t>(S * sel_stride_), -1);
    for (int64_t i = 0; i < S; ++i) {
      n_sel_[i] = pos_[i] + 1;
      for (int64_t j = 0; j <= pos_[i]; ++j) host_i32_[i * sel_stride_ + j] = static_cast<int32_t>(j);
    }
    be.upload(ws.dense_sel.data(), host_i32_.data(), host_i32_.size() * sizeof(int32_t));
  }
  upload_n_sel();
  return {};
}

void BackendModel::upload_n_sel() {
  host_i32_.resize(static_cast<size_t>(S_));
  for (int64_t i = 0; i < S_; ++i) host_i32_[i] = static_cast<int32_t>(n_sel_[i]);
  be_->upload(ws_.n_sel.data(), host_i32_.data(), host_i32_.size() * sizeof(int32_t));
}

cpu::LatentCacheView BackendModel::latent_view(KvCache& cache, int64_t layer, int64_t row) const {
  return cpu::LatentCacheView{cache.latent_arena(layer), ws_.pages.data() + slot_[row] * max_pages_, cache.format(),
                              cfg_.kv_lora_rank, cfg_.qk_rope_head_dim, cache.record_bytes()};
}

cpu::IndexerCacheView BackendModel::indexer_view(KvCache& cache, int64_t layer, int64_t row) const {
  return cpu::IndexerCacheView{cache.indexer_arena(layer), ws_.pages.data() + slot_[row] * max_pages_,
                               cfg_.index_head_dim, cache.indexer_page_bytes()};
}

void BackendModel::run_layers(KvCache& cache, ForwardTrace* trace) {
  Backend& be = *be_;
  const int64_t S = S_, L = cfg_.num_hidden_layers, D = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  start_trace(trace, L);
  float* x = ws_.x.data();
  float* xn = ws_.xn.data();
  float* residual = ws_.residual.data();
  be.embed_rows(embed_, D, ws_.ids.data(), S, x);
  if (host_.embed_rows != cfg_.vocab_size) {  // each rank embedded the tokens it holds, zeros elsewhere
    be.collective([comm = comm_, x, count = S * D](void* stream) { comm->all_reduce_sum_on(x, count, stream); });
  }
  for (int64_t layer = 0; layer < L; ++layer) {
    const Layer& lw = layers_[layer];
    if (layer == 0) {
      be.copy(residual, x, static_cast<size_t>(S * D) * sizeof(float));
      be.rms_norm(x, S, D, lw.input_norm, eps, xn);
    } else {
      be.add_rms_norm(x, residual, S, D, lw.input_norm, eps, xn);
    }
    attention(layer, cache, ws_.attn_out.data(), trace);
    be.add_rms_norm(ws_.attn_out.data(), residual, S, D, lw.post_norm, eps, xn);
    if (lw.is_moe) {
      moe(lw, xn, x);
    } else {
      mlp(lw.mlp, xn, S, x, /*sharded=*/true);
    }
    if (trace) {
      std::vector<float> r(static_cast<size_t>(S * D));
      auto& h = trace->hidden[layer];
      h.resize(static_cast<size_t>(S * D));
      be.download(h.data(), x, h.size() * sizeof(float));
      be.download(r.data(), residual, r.size() * sizeof(float));
      for (size_t j = 0; j < h.size(); ++j) h[j] += r[j];
    }
  }
}

void BackendModel::head(int64_t first, int64_t n) {
  const int64_t D = cfg_.hidden_size;
  float* h = ws_.xn.data() + first * D;
  be_->add_rms_norm(ws_.x.data() + first * D, ws_.residual.data() + first * D, n, D, norm_,
                    static_cast<float>(cfg_.rms_norm_eps), h);
  if (lm_head_.n == cfg_.vocab_size) {
    matrix(lm_head_, h, n, ws_.logits.data());
    return;
  }
  // The vocabulary is split over the ranks: this rank's logits, then every rank's gathered.
  matrix(lm_head_, h, n, ws_.logits_local.data());
  gather_columns(ws_.logits_local.data(), n, lm_head_.n, ws_.logits.data());
}

void BackendModel::project_to_hidden(const Linear& l, const float* x, int64_t S, float* out) {
  if (l.n == cfg_.hidden_size) {
    linear(l, x, S, out);
    return;
  }
  linear(l, x, S, ws_.hidden_local.data());
  gather_columns(ws_.hidden_local.data(), S, l.n, out);
}

void BackendModel::gather_columns(const float* local, int64_t S, int64_t width, float* full) {
  const int64_t n = comm_->size();
  const size_t row = static_cast<size_t>(width) * sizeof(float);
  if (n == 1) {
    be_->copy(full, local, static_cast<size_t>(S) * row);
    return;
  }
  float* all = ws_.gathered.data();  // [rank][S, width]
  be_->collective([comm = comm_, local, count = S * width, all](void* stream) {
    comm->all_gather_on(local, count, all, stream);
  });
  for (int64_t r = 0; r < n; ++r) {
    be_->copy_rows(full + r * width, static_cast<size_t>(n) * row, all + r * S * width, row, row,
                   static_cast<size_t>(S));
  }
}

}  // namespace dsa
