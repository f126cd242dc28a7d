// BackendModel: the DeepSeek-V3.2 forward pass on a Backend (backend.hpp), for GPUs. Weights,
// caches and activations live in the backend's memory and every step is a backend op; the host
// only orders the ops, keeps the page tables and positions, and groups the MoE rows by expert.
//
// The same math as Model (model.hpp, the CPU engine and reference), with one difference in form:
// every query, prefill or decode, attends in the absorbed (MQA) form over its selected latent
// records (as FlashMLA's sparse kernels do), where Model's prefill expands the selected keys
// through kv_b_proj (the MHA form). So decode steps give Model's logits bit for bit on the CPU
// backend, and a prefill chunk gives them to bf16 rounding.
//
// Parallel layout (with a Comm of size n > 1): as Model. The Comm must work on the backend's
// memory (threads on host memory for CpuBackend, NCCL on device memory for CudaBackend).
// Decode steps (every row the next token of its own sequence) run as backend recordings (CUDA
// graphs on a GPU, closures on the CPU): one recording per pool, row count and key span, replayed
// with the step's positions and page tables uploaded before; the Comm's collectives are recorded
// with the ops (Backend::collective: NCCL on the backend's stream). Not with a trace, the ranks' top-k
// check, dense attention, more than kRoutedMaxTokens rows or BF16 experts (those need the host).
// Not yet: per-phase times (the ops are asynchronous).
// Files: backend_model.cpp (load, block loop, head), backend_mla.cpp (attention), backend_moe.cpp.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/backend/backend.hpp"
#include "engine/dist/comm.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/config.hpp"
#include "engine/model/expert_groups.hpp"
#include "engine/model/forward_pass.hpp"
#include "engine/model/memory_plan.hpp"
#include "engine/model/weights.hpp"

namespace dsa {

class BackendModel final : public ForwardPass {
 public:
  // Opens DIR, binds the weights, checks the memory plan for `plan` (context, sequences) against
  // the backend's free memory (an error naming what does not fit, before anything is copied), then
  // makes the weights resident on the backend.
  static Result<std::unique_ptr<BackendModel>> load(const std::filesystem::path& dir, AttentionMode mode,
                                                    std::unique_ptr<Backend> backend, MemoryPlanOptions plan = {},
                                                    Comm* comm = nullptr);
  BackendModel(ModelConfig cfg, Checkpoint ckpt, Weights host, AttentionMode mode, std::unique_ptr<Backend> backend,
               Comm* comm);
  BackendModel(const BackendModel&) = delete;
  BackendModel& operator=(const BackendModel&) = delete;

  const ModelConfig& config() const override { return cfg_; }
  Result<void> forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                       ForwardTrace* trace = nullptr) override;
  Result<void> forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs, std::span<const int32_t> tokens,
                                    float* logits, ForwardTrace* trace = nullptr) override;
  // The backend's ops are asynchronous: phases are not timed.
  void set_phase_times(PhaseTimes*) override {}
  Backend* cache_memory() const override { return be_.get(); }
  Backend& backend() const { return *be_; }
  // As Model::set_check_topk: each layer's selections compared across the ranks; a difference
  // fails forward() on every rank, naming the first layer. On by default in debug builds.
  void set_check_topk(bool on) { check_topk_ = on; }
  // Decode steps as recordings (above): on by default.
  void set_recorded_decode(bool on) { recorded_decode_ = on; }
  struct RecordingCounts {
    int64_t recorded = 0;  // recordings made
    int64_t replayed = 0;  // decode steps run as a replay
  };
  RecordingCounts recording_counts() const { return counts_; }
  // What a rank of several does when its backend runs out of memory in the middle of a forward:
  // the other ranks wait in a collective it will not join, so by default the process ends with one
  // line (ranks::group_lost). One rank alone returns the out-of-memory error instead, which callers
  // answer with a smaller call. Replaced in tests.
  void set_on_group_lost(std::function<void(const std::string&)> f) { on_group_lost_ = std::move(f); }

 private:
  // Indexer queries scored at a time: the score buffer is [kScoreRows, context] fp32.
  static constexpr int64_t kScoreRows = 64;
  // Calls of up to this many tokens (decode steps and batches) run FP8 experts per routed pair, the
  // expert read on the device (matmul_fp8_routed); longer ones group the pairs by expert on the host.
  static constexpr int64_t kRoutedMaxTokens = 16;
  // A decode step's key span: the smallest power of two, at least this, holding every row's
  // context. The indexer's grid, the score rows' stride, the selection stride and the page tables'
  // stride follow from it, so a recording serves every step until the longest context passes it.
  static constexpr int64_t kMinKeySpan = 256;
  // Recordings kept at most: the least recently replayed one makes room for a new one (and all
  // are dropped when the workspace moves).
  static constexpr size_t kMaxRecordings = 64;

  // The weights as the backend holds them: Linear / Bf16Matrix with backend pointers, vectors as
  // backend arrays.
  struct Layer {
    const float *input_norm = nullptr, *post_norm = nullptr, *q_a_norm = nullptr, *kv_a_norm = nullptr;
    const float *idx_k_norm_w = nullptr, *idx_k_norm_b = nullptr, *gate_bias = nullptr;
    Linear q_a_proj, q_b_proj, kv_a_proj, o_proj, idx_wq_b, idx_wk;
    const uint16_t *w_uk_t = nullptr, *w_uv = nullptr;
    Bf16Matrix idx_weights_proj, gate;
    bool is_moe = false;
    bool runs_shared = false;  // this rank holds and runs the layer's shared experts
    MlpWeights mlp, shared_experts;
    std::vector<MlpWeights> experts;  // this rank's experts resident, the others empty
    // With FP8 experts, for the decode path that needs no host round trip: per expert its gate, up
    // and down projection ({null, null} for other ranks' experts), as the backend holds the tables
    // (routed) and on the host (routed_host, which the CPU backend uses in place: a Layer is moved,
    // never copied, so that routed keeps pointing at routed_host's buffer).
    std::vector<cpu::Fp8Matrix> routed_host[3];
    const cpu::Fp8Matrix* routed[3] = {};
  };

  // Activations of one call, in backend memory, grown to the largest call seen.
  struct Workspace {
    Buffer<int64_t> pos;
    Buffer<int32_t> ids, pages, n_valid, n_sel, sel, dense_sel, route_idx;
    // [S * K] slot -> expert row (-1: another rank's), then [rows] row -> token, then (FP8 experts,
    // longer calls) [n_routed_experts + 1] each expert's first row.
    Buffer<int32_t> moe_maps;
    Buffer<uint8_t> moe_codes;  // FP8 experts, longer calls: the rows quantised (act_quant), and
    Buffer<float> moe_scales;   // their scales

    Buffer<float> x, xn, residual, attn_out, qr, q, kv, c_kv, k_pe, q_abs, q_pe, o_lat, o, o_full;
    Buffer<float> idx_q, idx_k, idx_w, idx_q_scale, scores;
    Buffer<uint8_t> idx_q_codes;
    Buffer<float> gate, up, act, act_full, router_logits, route_w, expert_y, shared_out, gathered, logits;
    Buffer<float> expert_x;      // BF16 experts: the rows gathered per expert
    Buffer<float> hidden_local;  // [S, hidden / ranks]: project_to_hidden
    Buffer<float> logits_local;  // [rows, vocab / ranks]: head, the vocabulary split over the ranks
  };

  void make_resident();
  Linear resident(const Linear& l);
  MlpWeights resident(const MlpWeights& m);
  const float* resident(const std::vector<float>& v);
  const uint16_t* resident(const std::vector<uint16_t>& v);

  // Sets up the S rows of a call: ids, positions and page tables uploaded, the row -> page-table
  // slot map, the strides; grows the workspace. decode: row i is the next token of seqs[i];
  // otherwise all rows are seqs[0]'s, in order. The same error on every rank when one has not the
  // memory the workspace needs.
  Result<void> begin(std::span<const int32_t> tokens, std::span<Sequence* const> seqs, bool decode);
  // n_sel_ into ws_.n_sel.
  void upload_n_sel();
  // An error when a query would attend to more keys than the backend's attention kernel takes.
  Result<void> check_attention_keys(int64_t end, bool decode) const;
  // The layers and the logits of rows [first, first + n) into ws_.logits: a recording's replay for
  // a decode step that can be recorded, the ops themselves otherwise.
  void compute(KvCache& cache, ForwardTrace* trace, int64_t first, int64_t n);
  // compute(), with running out of memory in its ops handled (set_on_group_lost).
  Result<void> compute_or_short(KvCache& cache, ForwardTrace* trace, int64_t first, int64_t n);
  bool recordable(const ForwardTrace* trace) const;
  // short_ranks: the ranks that ran out (named when there are several ranks).
  Error workspace_error(int64_t rows, std::span<const int> short_ranks) const;
  void run_layers(KvCache& cache, ForwardTrace* trace);
  void attention(int64_t layer, KvCache& cache, float* out, ForwardTrace* trace);
  void mla_project(int64_t layer, KvCache& cache);
  void write_index_keys(int64_t layer, KvCache& cache);
  void score_queries(int64_t layer);
  void select_keys(int64_t layer, KvCache& cache, ForwardTrace* trace);
  void attend(int64_t layer, KvCache& cache);
  void mlp(const MlpWeights& w, const float* x, int64_t S, float* out, bool sharded);
  void gated_act(const MlpWeights& w, const float* x, int64_t S, float* gate, float* up, float* act);
  void moe(const Layer& lw, const float* x, float* out);
  // The routed experts' outputs of a longer call, grouped by expert on the host: expert_y's rows and
  // moe_maps as moe_combine reads them.
  void group_routed_pairs(const Layer& lw, const float* x);
  void gather_columns(const float* local, int64_t S, int64_t width, float* full);
  // As Model::project_to_hidden: o_proj and the dense down_proj, their output rows split over the
  // ranks where the config allows (this rank's columns, then the ranks' gathered).
  void project_to_hidden(const Linear& l, const float* x, int64_t S, float* out);
  // logits [n, vocab] of rows [first, first + n) into ws_.logits.
  void head(int64_t first, int64_t n);

  cpu::LatentCacheView latent_view(KvCache& cache, int64_t layer, int64_t row) const;
  cpu::IndexerCacheView indexer_view(KvCache& cache, int64_t layer, int64_t row) const;
  void linear(const Linear& l, const float* x, int64_t m, float* y);
  void matrix(const Bf16Matrix& w, const float* x, int64_t m, float* y);

  ModelConfig cfg_;
  Checkpoint ckpt_;  // owns the mmap the host weights point into
  Weights host_;     // bound on the host; the CPU backend uses it in place
  AttentionMode mode_;
  std::unique_ptr<Backend> be_;
  SingleComm single_;
  Comm* comm_;
  int64_t n_heads_;
  float softmax_scale_;
  const uint16_t* embed_ = nullptr;
  const float* norm_ = nullptr;
  Bf16Matrix lm_head_;
  const float* inv_freq_ = nullptr;
  std::vector<float> inv_freq_host_;
  std::vector<Layer> layers_;
  bool moe_on_device_ = true;  // every MoE layer's experts are FP8 (decode steps need no host)
  bool fp8_experts_ = false;   // some MoE layer's experts are FP8

  // The rows of the current call.
  int64_t S_ = 0, end_ = 0, sel_stride_ = 0, max_pages_ = 0;
  bool decode_ = false;
  int64_t span_ = 0;                       // keys a score row holds: end_, or a decode step's key span
  int64_t pages_stride_ = 0;               // between the rows' page tables in ws_.pages: 0 for one sequence
  std::vector<int64_t> pos_;               // [S] positions
  std::vector<int64_t> slot_;              // [S] the row's page table in ws_.pages
  std::vector<const Sequence*> row_seq_;   // [S]
  std::vector<int64_t> n_sel_;             // [S]
  const int32_t* attend_sel_ = nullptr;    // [S, sel_stride_]: the keys attention reads this layer
  std::vector<int32_t> host_i32_;          // staging for uploads and downloads
  ExpertGroups groups_;                    // MoE: the rows of each local expert
  std::vector<int32_t> route_host_;        // MoE: the routing, downloaded
#ifdef NDEBUG
  bool check_topk_ = false;
#else
  bool check_topk_ = true;
#endif
  int64_t topk_mismatch_layer_ = -1;       // the first layer whose selections differed across ranks
  Workspace ws_;
  // Per workspace buffer, the most elements every rank holds: a request within it allocates nothing
  // on any rank (begin()).
  std::map<const void*, size_t> granted_;
  // The buffers the current call grew: freed again, their grants back to none, when the call runs
  // out of memory after all (so that a smaller call finds the memory).
  struct Raise {
    size_t* granted;
    size_t want;
    std::function<void()> release;
  };
  std::vector<Raise> raised_;
  void release_raised();
  std::function<void(const std::string&)> on_group_lost_;
  // Decode-step recordings by (pool id, rows, key span); declared after be_ and ws_, so destroyed
  // before them.
  struct Kept {
    std::unique_ptr<Backend::Recording> recording;
    uint64_t last_use = 0;  // uses_ when last replayed
  };
  std::map<std::tuple<uint64_t, int64_t, int64_t>, Kept> recordings_;
  uint64_t uses_ = 0;
  bool recorded_decode_ = true;
  RecordingCounts counts_;
};

}  // namespace dsa
