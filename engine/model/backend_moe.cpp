// BackendModel's FFN (moe.cpp's, as backend ops): the SwiGLU MLP and the MoE layer. Decode steps
// run FP8 experts per routed pair, each reading its expert on the device; longer calls group the
// rows by expert on the host from the routing the backend computed, then run every expert of a
// projection in one op (FP8) or one expert at a time (BF16). All give Model's numbers.
#include <vector>

#include "engine/model/backend_model.hpp"
#include "engine/model/expert_groups.hpp"
#include "kernels/cpu/quant.hpp"

namespace dsa {

void BackendModel::gated_act(const MlpWeights& w, const float* x, int64_t S, float* gate, float* up, float* act) {
  linear(w.gate_proj, x, S, gate);
  linear(w.up_proj, x, S, up);
  be_->swiglu(gate, up, S * w.gate_proj.n, act);
}

void BackendModel::mlp(const MlpWeights& w, const float* x, int64_t S, float* out, bool sharded) {
  float* act = ws_.act.data();
  gated_act(w, x, S, ws_.gate.data(), ws_.up.data(), act);
  if (sharded && comm_->size() > 1) {
    gather_columns(act, S, w.gate_proj.n, ws_.act_full.data());
    act = ws_.act_full.data();
  }
  project_to_hidden(w.down_proj, act, S, out);
}

void BackendModel::moe(const Layer& lw, const float* x, float* out) {
  Backend& be = *be_;
  const ModelConfig& c = cfg_;
  const int64_t S = S_, D = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int64_t inter = c.moe_intermediate_size;
  const int rank = comm_->rank(), n_ranks = comm_->size();

  matrix(lw.gate, x, S, ws_.router_logits.data());
  be.moe_route(ws_.router_logits.data(), lw.gate_bias, S, E, c.n_group, c.topk_group, K, c.norm_topk_prob,
               static_cast<float>(c.routed_scaling_factor), ws_.route_idx.data(), ws_.route_w.data());

  float* expert_y = ws_.expert_y.data();
  if (lw.routed[0] && S <= kRoutedMaxTokens) {
    // Row p of gate / up / act / expert_y is pair p (token p / K); other ranks' pairs are zero rows
    // that moe_combine skips.
    const int64_t P = S * K;
    const int32_t* idx = ws_.route_idx.data();
    float *gate = ws_.gate.data(), *up = ws_.up.data(), *act = ws_.act.data();
    be.moe_owned_rows(idx, P, rank, n_ranks, ws_.moe_maps.data());
    be.matmul_fp8_routed(x, D, K, idx, P, rank, n_ranks, lw.routed[0], D, inter, gate, inter);
    be.matmul_fp8_routed(x, D, K, idx, P, rank, n_ranks, lw.routed[1], D, inter, up, inter);
    be.swiglu(gate, up, P * inter, act);
    be.matmul_fp8_routed(act, inter, 1, idx, P, rank, n_ranks, lw.routed[2], inter, D, expert_y, D);
  } else {
    group_routed_pairs(lw, x);
  }
  float* shared = nullptr;
  if (lw.runs_shared) {
    shared = ws_.shared_out.data();
    mlp(lw.shared_experts, x, S, shared, /*sharded=*/false);
  }
  be.moe_combine(expert_y, ws_.moe_maps.data(), ws_.route_w.data(), S, K, D, shared, out);
  if (n_ranks > 1) {
    be.collective([comm = comm_, out, count = S * D](void* stream) { comm->all_reduce_sum_on(out, count, stream); });
  }
  be.round_bf16(out, S * D);
}

void BackendModel::group_routed_pairs(const Layer& lw, const float* x) {
  Backend& be = *be_;
  const ModelConfig& c = cfg_;
  const int64_t S = S_, D = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  const int64_t inter = c.moe_intermediate_size;
  const int rank = comm_->rank(), n_ranks = comm_->size();
  // The host groups the (token, slot) pairs by expert, as Model does: expert active[i]'s rows are
  // [first[i], first[i + 1]) of the FFN buffers and expert_y (and of expert_x for BF16 experts).
  std::vector<int32_t>& idx = route_host_;
  idx.resize(static_cast<size_t>(S * K));
  be.download(idx.data(), ws_.route_idx.data(), idx.size() * sizeof(int32_t));
  group_by_expert(idx.data(), S * K, E, rank, n_ranks, groups_);
  const std::vector<int64_t>& active = groups_.active;
  const std::vector<int64_t>& first = groups_.first;
  const int64_t rows = groups_.rows();
  // One upload: the slot -> row map [S * K] (-1 for other ranks' experts), then each row's token.
  std::vector<int32_t>& maps = host_i32_;
  maps.assign(static_cast<size_t>(S * K + rows), -1);
  int32_t* slot_row = maps.data();
  int32_t* token_of_row = slot_row + S * K;
  for (int64_t r = 0; r < rows; ++r) {
    token_of_row[r] = groups_.slots[r] / static_cast<int32_t>(K);
    slot_row[groups_.slots[r]] = static_cast<int32_t>(r);
  }
  if (lw.routed[0]) {
    // Then each expert's first row, for every expert (the others' and the idle ones' groups empty).
    maps.resize(maps.size() + static_cast<size_t>(E + 1));
    int32_t* first_of = maps.data() + S * K + rows;
    for (size_t i = 0, e = 0; e <= static_cast<size_t>(E); ++e) {
      while (i < active.size() && active[i] < static_cast<int64_t>(e)) ++i;
      first_of[e] = static_cast<int32_t>(i < active.size() ? first[i] : rows);
    }
    be.upload(ws_.moe_maps.data(), maps.data(), maps.size() * sizeof(int32_t));
    const int32_t* row_token = ws_.moe_maps.data() + S * K;
    const int32_t* first_dev = row_token + rows;
    // The tokens quantised once for the gate and up projections of all their experts; the
    // activations once for the down projections.
    uint8_t* codes = ws_.moe_codes.data();
    float* scales = ws_.moe_scales.data();
    float *gate = ws_.gate.data(), *up = ws_.up.data(), *act = ws_.act.data();
    be.act_quant(x, S * D, cpu::kQuantBlock, codes, scales);
    be.matmul_fp8_grouped(codes, scales, D, row_token, first_dev, first_of, E, lw.routed[0], inter, gate, inter);
    be.matmul_fp8_grouped(codes, scales, D, row_token, first_dev, first_of, E, lw.routed[1], inter, up, inter);
    be.swiglu(gate, up, rows * inter, act);
    be.act_quant(act, rows * inter, cpu::kQuantBlock, codes, scales);
    be.matmul_fp8_grouped(codes, scales, inter, nullptr, first_dev, first_of, E, lw.routed[2], D, ws_.expert_y.data(),
                          D);
    return;
  }
  be.upload(ws_.moe_maps.data(), maps.data(), maps.size() * sizeof(int32_t));
  float* expert_x = ws_.expert_x.data();
  float* expert_y = ws_.expert_y.data();
  be.gather_rows(x, D, ws_.moe_maps.data() + S * K, rows, expert_x);
  for (size_t i = 0; i < active.size(); ++i) {
    const int64_t r0 = first[i], n = first[i + 1] - r0;
    const MlpWeights& w = lw.experts[static_cast<size_t>(active[i])];
    float* act = ws_.act.data() + r0 * inter;
    gated_act(w, expert_x + r0 * D, n, ws_.gate.data() + r0 * inter, ws_.up.data() + r0 * inter, act);
    linear(w.down_proj, act, n, expert_y + r0 * D);
  }
}

}  // namespace dsa
