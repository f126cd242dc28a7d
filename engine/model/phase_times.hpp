// Where a forward pass spends its time, by phase, for `dsagent bench`'s breakdown. The model adds
// the wall time of each phase to a PhaseTimes the caller hands it (Model::set_phase_times); with
// none set, timing costs one null check per phase.
//
// Phases: projections (the MLA q/kv/o linears, their norms and RoPE, cache writes), indexer (its
// key/query projections, Hadamard, FP8 quantisation and the scores over the cached keys), topk (the
// per-query selection), attention (the absorbed q/o products and attention over the selected
// latents, or prefill's key expansion and MHA), moe (router, routed and shared experts), mlp (the
// dense layers' MLP), lm_head (final norm and head). Whatever the phases leave out (embedding,
// the block norms and residual adds) is the caller's total minus their sum.
#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <string_view>

namespace dsa {

enum class Phase : int { projections, indexer, topk, attention, moe, mlp, lm_head };
inline constexpr std::array<std::string_view, 7> kPhaseNames = {"projections", "indexer", "topk", "attention",
                                                                 "moe",         "mlp",     "lm_head"};

struct PhaseTimes {
  std::array<double, kPhaseNames.size()> seconds{};

  double& operator[](Phase p) { return seconds[static_cast<size_t>(p)]; }
  double operator[](Phase p) const { return seconds[static_cast<size_t>(p)]; }
  double total() const {
    double s = 0;
    for (double v : seconds) s += v;
    return s;
  }
  void clear() { seconds.fill(0); }
};

// Adds the scope's wall time to times[phase] (nothing when times is null).
class PhaseScope {
 public:
  PhaseScope(PhaseTimes* times, Phase phase) : times_(times), phase_(phase) {
    if (times_) t0_ = std::chrono::steady_clock::now();
  }
  ~PhaseScope() {
    if (times_) (*times_)[phase_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseTimes* times_;
  Phase phase_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace dsa
