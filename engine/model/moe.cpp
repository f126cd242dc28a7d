// The FFN of a block (model-spec 6): the SwiGLU MLP (dense layers, experts, the shared expert) and
// the MoE layer: sigmoid router with group-limited top-k, this rank's experts run on the tokens
// routed to them, outputs combined per token in routing order plus the unweighted shared expert.
#include <algorithm>

#include "engine/model/expert_groups.hpp"
#include "engine/model/model.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/rows.hpp"

namespace dsa {

void Model::mlp(const MlpWeights& w, const float* x, int64_t S, float* out, bool sharded) {
  float* act = ws_.act.data();  // [S, inter]
  gated_act(w, x, S, ws_.gate.data(), ws_.up.data(), act);
  if (sharded && comm_->size() > 1) {
    // The dense MLP's intermediate is split over the ranks: gather it before the full down_proj.
    gather_columns(act, S, w.gate_proj.n, ws_.act_full.data());
    act = ws_.act_full.data();
  }
  project_to_hidden(w.down_proj, act, S, out);
}

void Model::gated_act(const MlpWeights& w, const float* x, int64_t S, float* gate, float* up, float* act) const {
  w.gate_proj.apply(x, S, gate);
  w.up_proj.apply(x, S, up);
  cpu::swiglu(gate, up, S * w.gate_proj.n, act);
}

void Model::moe(int64_t layer, const LayerWeights& lw, const float* x, int64_t S, float* out) {
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
  // buffers, so experts can run side by side; each token then sums its rows of expert_y.
  const int64_t inter = c.moe_intermediate_size;
  float* expert_x = ws_.expert_x.data();      // [S * K, D]
  float* expert_y = ws_.expert_y.data();      // [S * K, D]
  float* shared_out = ws_.shared_out.data();  // [S, D]: the shared expert's output
  ExpertGroups& groups = ws_.expert_groups;
  group_by_expert(idx, S * K, E, rank, n_ranks, groups);
  const std::vector<int64_t>& active = groups.active;
  const std::vector<int64_t>& first = groups.first;
  const int32_t* slots = groups.slots.data();
  const int64_t rows = groups.rows();
  for (int64_t r = 0; r < rows; ++r) std::copy(x + (slots[r] / K) * D, x + (slots[r] / K + 1) * D, expert_x + r * D);
  // With enough experts to keep every thread busy, one expert per task.
  cpu::for_each_item(static_cast<int64_t>(active.size()), [&](int64_t i) {
    const int64_t r0 = first[i], n = first[i + 1] - r0;
    float* act = ws_.act.data() + r0 * inter;
    gated_act(lw.experts[active[i]], expert_x + r0 * D, n, ws_.gate.data() + r0 * inter, ws_.up.data() + r0 * inter,
              act);
    lw.experts[active[i]].down_proj.apply(act, n, expert_y + r0 * D);
  });
  int32_t* slot_row = ws_.slot_row.data();  // [S, K]: the expert_y row of each (token, slot), -1 elsewhere
  std::fill(slot_row, slot_row + S * K, -1);
  for (int64_t r = 0; r < rows; ++r) slot_row[slots[r]] = static_cast<int32_t>(r);
  // Summed in routing order as the reference, plus the shared expert (if the model has one) on its
  // rank.
  float* shared = nullptr;
  if (rank == c.shared_experts_rank(layer, n_ranks)) {
    shared = shared_out;
    mlp(lw.shared_experts, x, S, shared);
  }
  cpu::moe_combine(expert_y, slot_row, weight, S, K, D, shared, out);
  comm_->all_reduce_sum(out, S * D);
  cpu::round_bf16(out, S * D);
}

}  // namespace dsa
