// Top-k selection of the indexer (model-spec 5.5) and of the MoE router.
#pragma once
#include <cstdint>

namespace dsa::cpu {

// Positions of the k largest of scores[0..n), ties broken towards the lower position, written to
// out[0..k) in ascending position order (reference topk_lower_index). k <= n. NaN ranks below every
// number (below -inf). O(n) selection, not a full sort.
void topk_positions(const float* scores, int64_t n, int64_t k, int32_t* out);

}  // namespace dsa::cpu
