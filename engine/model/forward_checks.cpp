#include "engine/model/forward_checks.hpp"

#include <algorithm>
#include <vector>

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
  if (c.fp8) {
    // Every FP8 projection's input spans whole 128-column scale blocks (the loader's rule). o_proj's
    // input is every head's value.
    struct InFeatures {
      const char* field;
      const char* product;  // how k is made, when it is not the field itself
      int64_t k;
    };
    const InFeatures in_features[] = {
        {"hidden_size", "", c.hidden_size},
        {"q_lora_rank", "", c.q_lora_rank},
        {"intermediate_size", "", c.intermediate_size},
        {"moe_intermediate_size", "", c.moe_intermediate_size},
        {"v_head_dim", "num_attention_heads * v_head_dim ", c.num_attention_heads * c.v_head_dim},
    };
    for (const InFeatures& f : in_features) {
      if (f.k % 128 != 0) {
        return bad(f.field,
                   std::string(f.product) + "must be a multiple of 128 with FP8 weights, found " + std::to_string(f.k));
      }
    }
  }
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

uint64_t selection_fingerprint(const int32_t* sel, int64_t stride, const int64_t* n_sel, int64_t S) {
  uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](uint64_t v) {
    for (int b = 0; b < 8; ++b) {
      h ^= (v >> (8 * b)) & 0xffu;
      h *= 1099511628211ull;
    }
  };
  for (int64_t i = 0; i < S; ++i) {
    mix(static_cast<uint64_t>(n_sel[i]));
    for (int64_t j = 0; j < n_sel[i]; ++j) mix(static_cast<uint32_t>(sel[i * stride + j]));
  }
  return h;
}

bool ranks_agree(Comm& comm, uint64_t fingerprint) {
  // Sent as four 16-bit pieces, exact in fp32.
  float mine[4];
  for (int k = 0; k < 4; ++k) mine[k] = static_cast<float>((fingerprint >> (16 * k)) & 0xffffu);
  std::vector<float> all(static_cast<size_t>(4 * comm.size()));
  comm.all_gather(mine, 4, all.data());
  for (int r = 1; r < comm.size(); ++r)
    if (!std::equal(all.begin(), all.begin() + 4, all.begin() + 4 * r)) return false;
  return true;
}

Error topk_mismatch_error(int64_t layer) {
  return make_error("forward: the ranks selected different top-k keys (first at layer " + std::to_string(layer) +
                    "); their indexer inputs differ");
}

}  // namespace dsa
