// The input checks every ForwardPass makes before it touches a cache, with the one-line errors the
// caller sees, and the config limits of the engine's kernels.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "engine/api/result.hpp"
#include "engine/dist/comm.hpp"
#include "engine/model/config.hpp"
#include "engine/runtime/kv_cache.hpp"

namespace dsa {

// What the kernels and the loader need beyond validate_config (src names the config file in the
// error): the index head dim a power of two up to 128, kv_lora_rank a multiple of 128, and FP8
// weights in 128x128 blocks whose every projection has whole blocks of inputs.
Result<void> check_engine_limits(const ModelConfig& c, const std::string& src);

// Every id in [0, vocab).
Result<void> check_tokens(std::span<const int32_t> tokens, int64_t vocab);

// A forward ending at position end - 1 stays within max_positions.
Result<void> check_position(int64_t end, int64_t max_positions);

// A decode batch: at least one sequence, one token each, no sequence twice, every next position
// within max_positions. Gives the largest end (n_cached + 1) of the batch.
Result<int64_t> check_decode_batch(std::span<Sequence* const> seqs, std::span<const int32_t> tokens,
                                   const ModelConfig& c);

// FNV-1a over the counts and positions of S selections (row i: n_sel[i] positions at sel + i * stride).
uint64_t selection_fingerprint(const int32_t* sel, int64_t stride, const int64_t* n_sel, int64_t S);

// Whether every rank holds the same fingerprint. Collective: every rank calls it and gets the same
// answer, so all of them stay in step. Host memory.
bool ranks_agree(Comm& comm, uint64_t fingerprint);

// The error of a forward whose ranks selected differently, first at `layer`.
Error topk_mismatch_error(int64_t layer);

}  // namespace dsa
