// group_by_expert against the plain two-loop grouping (each of the rank's experts in turn, its pairs
// in order), over ranks and with experts nobody picked.
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "engine/model/expert_groups.hpp"

namespace dsa {
namespace {

TEST_CASE("group_by_expert gives each rank's experts their pairs in order") {
  std::mt19937 rng(3);
  for (const int64_t n_experts : {8, 256}) {
    for (const int64_t n_pairs : {0, 1, 8, 2048 * 8}) {
      std::vector<int32_t> idx(static_cast<size_t>(n_pairs));
      // Half of the experts only, so that some have no rows.
      for (int32_t& e : idx) e = static_cast<int32_t>(rng() % (n_experts / 2)) * 2 + static_cast<int32_t>(rng() % 2 == 0);
      for (const int n_ranks : {1, 2, 3}) {
        for (int rank = 0; rank < n_ranks; ++rank) {
          ExpertGroups got;
          group_by_expert(idx.data(), n_pairs, n_experts, rank, n_ranks, got);
          std::vector<int64_t> active, first{0};
          std::vector<int32_t> slots;
          for (int64_t e = rank; e < n_experts; e += n_ranks) {
            const size_t before = slots.size();
            for (int64_t s = 0; s < n_pairs; ++s)
              if (idx[s] == e) slots.push_back(static_cast<int32_t>(s));
            if (slots.size() == before) continue;
            active.push_back(e);
            first.push_back(static_cast<int64_t>(slots.size()));
          }
          CAPTURE(n_experts);
          CAPTURE(n_pairs);
          CAPTURE(rank);
          CHECK(got.active == active);
          CHECK(got.first == first);
          CHECK(got.slots == slots);
          CHECK(got.rows() == static_cast<int64_t>(slots.size()));
        }
      }
    }
  }
}

}  // namespace
}  // namespace dsa
