// The routed (token, slot) pairs of one MoE layer grouped by expert, for the experts one rank runs:
// each expert then runs once, on the rows routed to it. A counting pass over the pairs, O(pairs +
// experts).
#pragma once
#include <cstdint>
#include <vector>

namespace dsa {

struct ExpertGroups {
  std::vector<int64_t> active;  // experts with rows, ascending
  std::vector<int64_t> first;   // [active + 1]: expert active[i]'s rows are [first[i], first[i + 1])
  std::vector<int32_t> slots;   // [rows]: the (token * topk + slot) pair of each row, ascending per expert
  int64_t rows() const { return first.empty() ? 0 : first.back(); }
};

// idx: [n_pairs] expert ids (n_pairs = tokens * topk, slot-major per token); the rank runs experts
// e with e % n_ranks == rank. Fills groups (reusing its vectors' memory).
void group_by_expert(const int32_t* idx, int64_t n_pairs, int64_t n_experts, int rank, int n_ranks,
                     ExpertGroups& groups);

}  // namespace dsa
