#include "engine/model/expert_groups.hpp"

#include <cstddef>

namespace dsa {

void group_by_expert(const int32_t* idx, int64_t n_pairs, int64_t n_experts, int rank, int n_ranks,
                     ExpertGroups& groups) {
  const auto mine = [&](int64_t s) { return idx[s] % n_ranks == rank; };
  // next[e]: rows counted for expert e, then the row its next pair goes to.
  std::vector<int64_t> next(static_cast<size_t>(n_experts), 0);
  for (int64_t s = 0; s < n_pairs; ++s) {
    if (mine(s)) ++next[static_cast<size_t>(idx[s])];
  }
  groups.active.clear();
  groups.first.assign(1, 0);
  int64_t row = 0;
  for (int64_t e = 0; e < n_experts; ++e) {
    const int64_t n = next[static_cast<size_t>(e)];
    next[static_cast<size_t>(e)] = row;
    if (n == 0) continue;
    row += n;
    groups.active.push_back(e);
    groups.first.push_back(row);
  }
  groups.slots.resize(static_cast<size_t>(row));
  for (int64_t s = 0; s < n_pairs; ++s) {
    if (mine(s)) groups.slots[static_cast<size_t>(next[static_cast<size_t>(idx[s])]++)] = static_cast<int32_t>(s);
  }
}

}  // namespace dsa
