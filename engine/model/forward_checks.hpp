// The input checks every ForwardPass makes before it touches a cache, with the one-line errors the
// caller sees, and the config limits of the engine's kernels.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "engine/api/result.hpp"
#include "engine/model/config.hpp"
#include "engine/runtime/kv_cache.hpp"

namespace dsa {

// What the kernels need beyond validate_config (src names the config file in the error).
Result<void> check_engine_limits(const ModelConfig& c, const std::string& src);

// Every id in [0, vocab).
Result<void> check_tokens(std::span<const int32_t> tokens, int64_t vocab);

// A forward ending at position end - 1 stays within max_positions.
Result<void> check_position(int64_t end, int64_t max_positions);

// A decode batch: at least one sequence, one token each, no sequence twice, every next position
// within max_positions. Gives the largest end (n_cached + 1) of the batch.
Result<int64_t> check_decode_batch(std::span<Sequence* const> seqs, std::span<const int32_t> tokens,
                                   const ModelConfig& c);

}  // namespace dsa
