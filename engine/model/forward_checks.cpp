#include "engine/model/forward_checks.hpp"

#include <algorithm>

namespace dsa {

namespace {

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

}  // namespace

Result<void> check_engine_limits(const ModelConfig& c, const std::string& src) {
  const auto bad = [&](const std::string& field, const std::string& what) {
    return make_error(src + ": field '" + field + "': " + what);
  };
  if (!is_power_of_two(c.index_head_dim) || c.index_head_dim > 128)
    return bad("index_head_dim", "must be a power of two up to 128 (Hadamard, one FP8 scale per key)");
  if (c.kv_lora_rank % 128 != 0) return bad("kv_lora_rank", "must be a multiple of 128 (FP8 latent blocks)");
  if (c.fp8 && c.weight_block_size != 128)
    return bad("quantization_config.weight_block_size", "only [128, 128] is supported");
  return {};
}

Result<void> check_tokens(std::span<const int32_t> tokens, int64_t vocab) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      return make_error("forward: token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                        " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  return {};
}

Result<void> check_position(int64_t end, int64_t max_positions) {
  if (end > max_positions) {
    return make_error("forward: position " + std::to_string(end - 1) + " is beyond max_position_embeddings " +
                      std::to_string(max_positions));
  }
  return {};
}

Result<int64_t> check_decode_batch(std::span<Sequence* const> seqs, std::span<const int32_t> tokens,
                                   const ModelConfig& c) {
  const int64_t B = static_cast<int64_t>(seqs.size());
  if (B == 0) return make_error("forward_decode_batch: no sequences");
  if (static_cast<int64_t>(tokens.size()) != B) {
    return make_error("forward_decode_batch: " + std::to_string(tokens.size()) + " tokens for " + std::to_string(B) +
                      " sequences (one token each)");
  }
  if (auto r = check_tokens(tokens, c.vocab_size); !r) return r.error();
  int64_t end = 0;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t a = 0; a < b; ++a) {
      if (seqs[a] == seqs[b]) {
        return make_error("forward_decode_batch: sequence " + std::to_string(b) + " is sequence " + std::to_string(a) +
                          " again");
      }
    }
    if (auto r = check_position(seqs[b]->n_cached + 1, c.max_position_embeddings); !r) return r.error();
    end = std::max(end, seqs[b]->n_cached + 1);
  }
  return end;
}

}  // namespace dsa
