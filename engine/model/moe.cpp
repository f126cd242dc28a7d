// The FFN of a block (model-spec 6): the SwiGLU MLP (dense layers, experts, the shared expert) and
// the MoE layer: sigmoid router with group-limited top-k, this rank's experts run on the tokens
// routed to them, outputs combined per token in routing order plus the unweighted shared expert.
#include <algorithm>

#include "engine/model/model.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/dtypes.hpp"

namespace dsa {

void Model::mlp(const MlpWeights& w, const float* x, int64_t S, float* out, bool sharded) {
  const int64_t inter = w.gate_proj.n;
  float* gate = ws_.gate.data();
  float* up = ws_.up.data();
  float* act = ws_.act.data();  // [S, inter]
  w.gate_proj.apply(x, S, gate);
  w.up_proj.apply(x, S, up);
  cpu::swiglu(gate, up, S * inter, act);
  if (sharded && comm_->size() > 1) {
    gather_columns(act, S, inter, ws_.act_full.data());
    act = ws_.act_full.data();
  }
  w.down_proj.apply(act, S, out);
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

  // Each local expert runs once on the batch of tokens routed to it; its output rows land in
  // expert_out at the (token, slot) they came from.
  float* expert_x = ws_.expert_x.data();
  float* expert_y = ws_.expert_y.data();
  float* expert_out = ws_.expert_out.data();  // [S, K, D]
  int32_t* slots = ws_.expert_rows.data();
  for (int64_t e = rank; e < E; e += n_ranks) {
    int64_t n = 0;
    for (int64_t s = 0; s < S * K; ++s) {
      if (idx[s] == e) slots[n++] = static_cast<int32_t>(s);
    }
    if (n == 0) continue;
    for (int64_t r = 0; r < n; ++r) std::copy(x + (slots[r] / K) * D, x + (slots[r] / K + 1) * D, expert_x + r * D);
    mlp(lw.experts[e], expert_x, n, expert_y);
    for (int64_t r = 0; r < n; ++r) std::copy(expert_y + r * D, expert_y + (r + 1) * D, expert_out + slots[r] * D);
  }

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
