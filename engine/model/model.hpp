// Model: the DeepSeek-V3.2 forward pass on CPU (model-spec sections 4-6). One call runs a chunk of
// tokens at positions seq.n_cached.. against the paged caches: prefill (any start position, MHA
// form over cached keys 0..p) or decode (one token, absorbed MQA form), or one decode token for
// each of several sequences in a single pass over the weights. Every layer's indexer picks
// top-min(index_topk, p+1) keys per query, shared by all heads; attention touches only those.
// Files: model.cpp (block loop, embedding, head), mla.cpp (MLA + indexer), moe.cpp (MLP, MoE).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/dist/comm.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/config.hpp"
#include "engine/model/expert_groups.hpp"
#include "engine/model/forward_pass.hpp"
#include "engine/model/phase_times.hpp"
#include "engine/model/weights.hpp"
#include "engine/runtime/kv_cache.hpp"

namespace dsa {

class Model final : public ForwardPass {
 public:
  // Opens DIR (config.json + safetensors), validates the config and binds every weight. With a
  // Comm of size n > 1, one Model per rank: attention heads and the dense MLP's intermediate are
  // split n ways (tensor parallel; the head outputs / activations are all-gathered), o_proj, the
  // dense down_proj and lm_head by output rows where the sizes allow (ModelConfig::
  // splits_hidden_rows, splits_vocab; each output computed whole on one rank, then the ranks'
  // columns gathered), routed experts e with e % n == rank run here (expert parallel; rank
  // layer % n also runs the layer's shared expert; partial sums all-reduced). The embedding is
  // split by vocabulary rows too (each rank embeds the tokens it holds, the ranks' rows summed).
  // Norms and the indexer are replicated, so every rank selects the same top-k and gets the same
  // logits.
  static Result<std::unique_ptr<Model>> load(const std::filesystem::path& dir, AttentionMode mode,
                                             Comm* comm = nullptr);
  Model(ModelConfig cfg, Checkpoint ckpt, Weights w, AttentionMode mode, Comm* comm);
  Model(const Model&) = delete;  // comm_ may point at single_
  Model& operator=(const Model&) = delete;

  // ForwardPass. Caches in host memory.
  Result<void> forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                       ForwardTrace* trace = nullptr) override;

  // The projections, experts and head run on B rows (every weight read once per step), attention
  // and the indexer per sequence over its own cache. Gives, bit for bit, what B separate forward()
  // calls give; trace->hidden rows and trace->topk queries are in batch order.
  Result<void> forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs, std::span<const int32_t> tokens,
                                    float* logits, ForwardTrace* trace = nullptr) override;

  // Prefill expands (kv_b_proj) the selected keys of groups of queries whose union holds at most
  // n_keys keys (a query's own selection always fits), so its key workspace is O(n_keys), not
  // O(context). Default 4 * index_topk. Results do not depend on it.
  void set_prefill_key_limit(int64_t n_keys) { prefill_key_limit_ = n_keys; }
  // Bytes held by the prefill's expanded keys: grown to the largest group seen, never shrunk.
  size_t prefill_key_bytes() const;

  const ModelConfig& config() const override { return cfg_; }

  // With several ranks, each layer's top-k selections are compared across the ranks (a fingerprint
  // all-gathered per layer); a difference makes forward() fail on every rank with one line naming
  // the first layer. On by default in debug builds.
  void set_check_topk(bool on) { check_topk_ = on; }

  void set_phase_times(PhaseTimes* times) override { phase_times_ = times; }

 private:
  // Indexer queries scored at a time: the score buffer is [kIndexerScoreRows, context] fp32.
  static constexpr int64_t kIndexerScoreRows = 64;

  // Buffers of one forward call, grown to the largest chunk and context seen, then reused.
  struct Workspace {
    std::vector<int64_t> pos;                                  // [S] absolute positions
    std::vector<const Sequence*> row_seq;                      // [S] the sequence of each row
    std::vector<float> x, xn, residual, attn_out;              // [S, hidden]
    std::vector<float> qr, q, kv, c_kv, k_pe, o, o_full;       // MLA per-token rows
    std::vector<float> hidden_local;                           // [S, hidden / ranks]: project_to_hidden
    std::vector<float> logits_local;                           // [rows, vocab / ranks]: head
    std::vector<int32_t> local_ids;  // the tokens as rows of this rank's embedding share (-1: another's)
    std::vector<float> q_abs, q_pe, o_lat;                     // decode (absorbed form), [S, H, ...]
    std::vector<float> key_latent, key_pe, key_kv;             // prefill: the selected keys, expanded
    std::vector<int32_t> key_row;                              // prefill: position -> expanded row or -1
    std::vector<int32_t> key_pos;                              // prefill: expanded row -> position
    std::vector<float> idx_q, idx_k, idx_w, idx_q_scale, scores;
    std::vector<uint8_t> idx_q_codes;
    std::vector<int64_t> n_keys;                               // [S] candidates of each query
    std::vector<int32_t> sel, sel_rows;                        // [S, sel_stride] selections
    std::vector<int64_t> n_sel;                                // [S]
    int64_t sel_stride = 0;
    std::vector<float> gate, up, act, act_full;                // FFN
    std::vector<float> router_logits, route_w, expert_x, expert_y, shared_out;
    std::vector<int32_t> route_idx, slot_row;
    ExpertGroups expert_groups;                                // MoE: the rows of each local expert
    std::vector<float> gathered;
  };

  // Rows of one call: S rows at ws_.pos / ws_.row_seq. Either one sequence's chunk (prefill when
  // S > 1) or one decode row per distinct sequence (decode == true).
  void ensure_workspace(int64_t n_tokens, int64_t end, bool decode);
  void embed(std::span<const int32_t> tokens);
  // The block loop over the S rows of ws_.x; leaves the last layer's output in ws_.x / ws_.residual.
  void run_layers(KvCache& cache, int64_t S, bool decode, ForwardTrace* trace);
  // Final norm and head of rows [first, first + n): logits [n, vocab].
  void head(int64_t first, int64_t n, float* logits);
  // ws_.xn: [S, hidden] attn_norm output (bf16 values); out: [S, hidden].
  void attention(int64_t layer, KvCache& cache, int64_t S, bool decode, float* out, ForwardTrace* trace);
  // Projects the S queries' MLA q (ws_.q, rope applied) and writes their latents to the cache.
  void mla_project(int64_t layer, KvCache& cache, int64_t S);
  // Writes the S indexer keys to the cache and fills ws_.sel / ws_.n_sel (the indexer's top-k, the
  // dense causal set, or the forced selection).
  void indexer(int64_t layer, KvCache& cache, int64_t S, ForwardTrace* trace);
  // The S indexer keys into the cache.
  void write_index_keys(int64_t layer, KvCache& cache, int64_t S);
  // The indexer queries (FP8 codes) and head weights of the S tokens: ws_.idx_q_codes, ws_.idx_w.
  void score_queries(int64_t layer, int64_t S);
  void select_keys(int64_t layer, const KvCache& cache, int64_t S, ForwardTrace* trace);
  // Compares this layer's selections with the other ranks' (set_check_topk).
  void compare_selections(int64_t layer, int64_t S);
  // The error of a forward whose ranks selected differently, else nothing.
  Result<void> check_selections_agreed() const;
  void attend_prefill(int64_t layer, const KvCache& cache, const Sequence& seq, int64_t S);
  // Expands the n_rows keys at ws_.key_pos and attends queries [q0, q1) over them (ws_.sel_rows).
  void attend_prefill_group(int64_t layer, const KvCache& cache, const Sequence& seq, int32_t n_rows, int64_t q0,
                            int64_t q1);
  // The absorbed MQA form for S decode rows, each one token of its own sequence.
  void attend_decode(int64_t layer, const KvCache& cache, int64_t S);
  // x: [S, hidden] ffn_norm output; out: [S, hidden] bf16 values.
  // sharded: gate/up hold this rank's tensor-parallel rows (the dense MLP), not a whole expert's.
  void mlp(const MlpWeights& w, const float* x, int64_t S, float* out, bool sharded = false);
  // act = silu(gate(x)) * up(x) for S rows into caller-given [S, inter] buffers (so that several
  // experts can run at once on disjoint rows).
  void gated_act(const MlpWeights& w, const float* x, int64_t S, float* gate, float* up, float* act) const;
  // local [S, width] on every rank -> full [S, n_ranks * width], rank r's columns at r * width.
  void gather_columns(const float* local, int64_t S, int64_t width, float* full);
  // out [S, hidden] = l . x for o_proj and the dense down_proj: with their output rows split over
  // the ranks (ModelConfig::splits_hidden_rows), this rank's columns, then the ranks' gathered.
  void project_to_hidden(const Linear& l, const float* x, int64_t S, float* out);
  void moe(int64_t layer, const LayerWeights& lw, const float* x, int64_t S, float* out);

  ModelConfig cfg_;
  Checkpoint ckpt_;  // owns the mmap the weights point into
  Weights w_;
  AttentionMode mode_;
  SingleComm single_;
  Comm* comm_;        // never null: &single_ without tensor/expert parallelism
  int64_t n_heads_;   // attention heads on this rank
  std::vector<float> inv_freq_;  // YaRN [qk_rope_head_dim / 2]
  float softmax_scale_;
  int64_t prefill_key_limit_;
  PhaseTimes* phase_times_ = nullptr;
#ifdef NDEBUG
  bool check_topk_ = false;
#else
  bool check_topk_ = true;
#endif
  int64_t topk_mismatch_layer_ = -1;  // the first layer whose selections differed across ranks in this forward
  Workspace ws_;
};

}  // namespace dsa
