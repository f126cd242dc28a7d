// MoE router and SwiGLU (see moe.hpp).
#include "kernels/cpu/moe.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/cpu/check.hpp"
#include "kernels/cpu/topk.hpp"
#include "kernels/dtypes.hpp"

namespace dsa::cpu {
namespace {

// The fp32 sum of a short array in NumPy's order (its pairwise sum with eight accumulators), so the
// normalised weights match the reference bit for bit.
float sum_like_numpy(const float* a, int64_t n) {
  if (n < 8) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; ++i) s += a[i];
    return s;
  }
  float r[8];
  for (int i = 0; i < 8; ++i) r[i] = a[i];
  int64_t i = 8;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) r[j] += a[i + j];
  float s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
  for (; i < n; ++i) s += a[i];
  return s;
}

}  // namespace

void moe_route(const float* logits, const float* bias, int64_t n_experts, int64_t n_group, int64_t topk_group,
               int64_t topk, bool norm_topk_prob, float routed_scaling, int32_t* idx, float* weight) {
  DSA_KERNEL_REQUIRE(n_group > 0 && n_experts % n_group == 0 && topk_group <= n_group &&
                         topk <= topk_group * (n_experts / n_group),
                     "moe_route needs whole groups and enough experts in the kept groups");
  thread_local std::vector<float> s, sb, group_score;
  thread_local std::vector<int32_t> keep, order;
  s.resize(n_experts);
  sb.resize(n_experts);
  for (int64_t e = 0; e < n_experts; ++e) {
    s[e] = float(1.0 / (1.0 + std::exp(-double(logits[e]))));
    sb[e] = s[e] + bias[e];
  }
  const int64_t per = n_experts / n_group;
  group_score.resize(n_group);
  for (int64_t g = 0; g < n_group; ++g) {
    float top1 = -std::numeric_limits<float>::infinity(), top2 = top1;
    for (int64_t e = g * per; e < (g + 1) * per; ++e) {
      if (sb[e] > top1) {
        top2 = top1;
        top1 = sb[e];
      } else if (sb[e] > top2) {
        top2 = sb[e];
      }
    }
    group_score[g] = per >= 2 ? top2 + top1 : top1;
  }
  keep.resize(topk_group);
  topk_positions(group_score.data(), n_group, topk_group, keep.data());
  // Experts of the kept groups, best biased score first, ties to the lower id.
  order.clear();
  for (int64_t i = 0; i < topk_group; ++i)
    for (int64_t e = keep[i] * per; e < (keep[i] + 1) * per; ++e) order.push_back(static_cast<int32_t>(e));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return sb[a] > sb[b]; });
  for (int64_t i = 0; i < topk; ++i) {
    idx[i] = order[i];
    weight[i] = s[order[i]];
  }
  const float denom = norm_topk_prob ? sum_like_numpy(weight, topk) : 1.0f;
  for (int64_t i = 0; i < topk; ++i) weight[i] = (norm_topk_prob ? weight[i] / denom : weight[i]) * routed_scaling;
}

void swiglu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = round_bf16(float(g / (1.0 + std::exp(-g)) * double(up[i])));
  }
}

void moe_combine(const float* y, const int32_t* row, const float* weight, int64_t n_tok, int64_t topk, int64_t dim,
                 const float* shared, float* out) {
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int64_t j = 0; j < dim; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < topk; ++k) {
        const int32_t r = row[i * topk + k];
        if (r >= 0) acc += static_cast<double>(y[static_cast<int64_t>(r) * dim + j]) * weight[i * topk + k];
      }
      if (shared) acc += shared[i * dim + j];
      out[i * dim + j] = static_cast<float>(acc);
    }
  }
}

void moe_owned_rows(const int32_t* idx, int64_t n_pairs, int rank, int n_ranks, int32_t* rows) {
  for (int64_t p = 0; p < n_pairs; ++p) rows[p] = idx[p] % n_ranks == rank ? static_cast<int32_t>(p) : -1;
}

}  // namespace dsa::cpu
