// The host's draw of one token from one logits row, timed alone: each decode step draws every row
// on the host (the rows of a step in parallel). Greedy, and the checkpoint's suggested sampling
// (temperature 1, top-p 0.95), whose time grows with the number of ids in the nucleus (a random-
// weight model's logits are broad: a worst case). Each timed after a warm-up draw, repeated until a
// tenth of a second has passed (at most 100 draws).
#pragma once
#include <cstdint>
#include <span>

namespace dsa::cli {

struct SamplingTimes {
  double greedy_seconds = 0;   // per draw
  double nucleus_seconds = 0;  // per draw, temperature 1, top-p 0.95
  int64_t nucleus_ids = 0;     // ids in that nucleus (the fewest most likely ids holding 95% of the mass)
};

SamplingTimes time_sampling(std::span<const float> logits);

}  // namespace dsa::cli
