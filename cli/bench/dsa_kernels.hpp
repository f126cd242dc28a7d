// The three DSA kernels of a decode step timed alone on a Backend (performance.md's kernel
// targets): the indexer's scores of one query over `keys` cached keys, the top-k (k = index_topk)
// of one `keys`-long score row, and the sparse attention of one query over index_topk selected
// latent records, with the model's head counts and widths (one rank's: all heads). Each is timed
// after a warm-up call, repeated until a tenth of a second has passed (at most 100 calls), the
// backend synchronised around the timed calls. The work counted:
//   indexer:   2 * index_n_heads * index_head_dim * keys FLOPs, keys * (head_dim + 4) bytes;
//   top-k:     keys * 4 bytes (one read of the row);
//   attention: 2 * heads * k * (2 * kv_lora + rope) FLOPs (scores and weighted sum),
//              k * record bytes.
#pragma once
#include <cstdint>

#include "engine/backend/backend.hpp"
#include "engine/model/config.hpp"
#include "kernels/cpu/attention.hpp"

namespace dsa::cli {

struct KernelTime {
  double seconds = 0;  // per call
  double flops = 0;    // per call, 0 where not counted
  double bytes = 0;    // per call
};

struct DsaKernelTimes {
  int64_t keys = 0, selected = 0;
  KernelTime indexer, topk, attention;
};

DsaKernelTimes time_dsa_kernels(Backend& be, const ModelConfig& cfg, cpu::LatentFormat fmt, int64_t keys);

}  // namespace dsa::cli
