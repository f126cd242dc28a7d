// What one decoded token reads and computes, for `dsagent bench`'s bandwidth accounting (calm-style:
// every line says how much it moved and what share of the machine's limit that is).
//
// Weights touched per token at batch 1: every tensor of the main layers, the final norm and the
// head in full, one embedding row, and of each MoE layer's routed experts only the
// num_experts_per_tok that the router picks (counted as that many average-sized experts). MTP layers
// are never run and not counted. Cache read per token at context length n (the new token included),
// per layer: sparse reads all n indexer keys and the min(index_topk, n) selected latent records;
// dense reads all n latent records and no indexer keys.
#pragma once
#include <cstdint>

#include "engine/api/result.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/config.hpp"
#include "engine/model/model.hpp"
#include "kernels/cpu/attention.hpp"

namespace dsa::cli {

struct WeightTraffic {
  double bytes_per_token = 0;     // weights touched per decoded token (scales included)
  double matmul_params = 0;       // weight elements multiplied per token (embedding lookup excluded)
  double checkpoint_bytes = 0;    // all tensors of the main layers, for reference
};

WeightTraffic weight_traffic(const Checkpoint& ckpt, const ModelConfig& cfg);

struct CacheTraffic {
  double bytes = 0;  // cache bytes read for one token at context length n
  double flops = 0;  // attention + indexer scoring FLOPs for that token
  double indexer_flops = 0;  // of which the indexer's scores (sparse only)
};

CacheTraffic cache_traffic(const ModelConfig& cfg, cpu::LatentFormat fmt, AttentionMode mode, int64_t n);

}  // namespace dsa::cli
