// The FFN of a block (model-spec 6): the SwiGLU MLP (dense layers, experts, the shared expert) and
// the MoE layer: sigmoid router with group-limited top-k, this rank's experts run on the tokens
// routed to them, outputs combined per token in routing order plus the unweighted shared expert.
#include <algorithm>

#include "engine/model/model.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/dtypes.hpp"

namespace dsa {

void Model::mlp(const MlpWeights& w, const float* x, int64_t S, float* out, bool sharded) {
  float* act = ws_.act.data();  // [S, inter]
  gated_act(w, x, S, ws_.gate.data(), ws_.up.data(), act);
  if (sharded && comm_->size() > 1) {
    // The dense MLP's intermediate is split over the ranks: gather it before the full down_proj.
    gather_columns(act, S, w.gate_proj.n, ws_.act_full.data());
    act = ws_.act_full.data();
  }
  w.down_proj.apply(act, S, out);
}

void Model::gated_act(const MlpWeights& w, const float* x, int64_t S, float* gate, float* up, float* act) const {
  w.gate_proj.apply(x, S, gate);
  w.up_proj.apply(x, S, up);
  cpu::swiglu(gate, up, S * w.gate_proj.n, act);
}

void Model::moe(const LayerWeights& lw, const float* x, int64_t S, float* out) {
  const ModelConfig& c = cfg_;
  const int64_t D = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int rank = comm_->rank(), n_ranks = comm_->size();

  float* logits = ws_.router_logits.data();  // [S, E] fp32
  int32_t* idx = ws_.route_idx.data();       // [S, K] best first
  float* weight = ws_.route_w.data();        // [S, K]
  lw.gate.apply(x, S, logits);
  for (int64_t i = 0; i < S; ++i) {
    cpu::moe_route(logits + i * E, lw.gate_bias.data(), E, c.n_group, c.topk_group, K, c.norm_topk_prob,
                   static_cast<float>(c.routed_scaling_factor), idx + i * K, weight + i * K);
  }

  // Each local expert runs once on the rows routed to it. The routed (token, slot) pairs are grouped
  // by expert: expert e's rows are slots[first[i] .. first[i + 1]) for the i-th active expert, their
  // inputs gathered at the same rows of expert_x and their intermediates at the same rows of the FFN
  // buffers, so experts can run side by side. Output rows land in expert_out at their (token, slot).
  const int64_t inter = c.moe_intermediate_size;
  float* expert_x = ws_.expert_x.data();      // [S * K, D]
  float* expert_y = ws_.expert_y.data();      // [S * K, D]
  float* expert_out = ws_.expert_out.data();  // [S, K, D]
  int32_t* slots = ws_.expert_rows.data();    // [S * K]
  std::vector<int64_t>& active = ws_.active_experts;
  std::vector<int64_t>& first = ws_.expert_first;
  active.clear();
  first.assign(1, 0);
  for (int64_t e = rank; e < E; e += n_ranks) {
    int64_t n = first.back();
    for (int64_t s = 0; s < S * K; ++s) {
      if (idx[s] == e) slots[n++] = static_cast<int32_t>(s);
    }
    if (n == first.back()) continue;
    active.push_back(e);
    first.push_back(n);
  }
  const int64_t rows = first.back();
  for (int64_t r = 0; r < rows; ++r) std::copy(x + (slots[r] / K) * D, x + (slots[r] / K + 1) * D, expert_x + r * D);
  // With enough experts to keep every thread busy, one expert per task.
  cpu::for_each_item(static_cast<int64_t>(active.size()), [&](int64_t i) {
    const int64_t r0 = first[i], n = first[i + 1] - r0;
    float* act = ws_.act.data() + r0 * inter;
    gated_act(lw.experts[active[i]], expert_x + r0 * D, n, ws_.gate.data() + r0 * inter, ws_.up.data() + r0 * inter,
              act);
    lw.experts[active[i]].down_proj.apply(act, n, expert_y + r0 * D);
  });
  for (int64_t r = 0; r < rows; ++r) std::copy(expert_y + r * D, expert_y + (r + 1) * D, expert_out + slots[r] * D);

  double* acc = ws_.moe_acc.data();  // [S, D], summed in routing order as the reference
  std::fill(acc, acc + S * D, 0.0);
  for (int64_t i = 0; i < S; ++i) {
    for (int64_t k = 0; k < K; ++k) {
      if (idx[i * K + k] % n_ranks != rank) continue;
      const float* y = expert_out + (i * K + k) * D;
      const double w = weight[i * K + k];
      for (int64_t j = 0; j < D; ++j) acc[i * D + j] += static_cast<double>(y[j]) * w;
    }
  }
  if (rank == 0) {
    mlp(lw.shared_experts, x, S, expert_y);
    for (int64_t j = 0; j < S * D; ++j) acc[j] += expert_y[j];
  }
  for (int64_t j = 0; j < S * D; ++j) out[j] = static_cast<float>(acc[j]);
  comm_->all_reduce_sum(out, S * D);
  for (int64_t j = 0; j < S * D; ++j) out[j] = round_bf16(out[j]);
}

}  // namespace dsa
