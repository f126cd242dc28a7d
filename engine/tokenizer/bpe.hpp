// Byte-level BPE model of an HF tokenizer.json ("model": {"type": "BPE", ...}): vocabulary and
// ranked merges. Encodes one pre-tokenized piece at a time, as HF does: start from one symbol per
// byte, repeatedly merge the adjacent pair of lowest rank (leftmost first on equal ranks).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/api/result.hpp"

namespace dsa {

class Bpe {
 public:
  // model: the "model" object of tokenizer.json; where: the file name for error messages.
  static Result<Bpe> from_json(const nlohmann::json& model, const std::string& where);

  // Appends the ids of piece (raw bytes, any content) to out.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  // Vocabulary entries are spelled in byte-level characters ("Ġhello").
  int32_t token_id(std::string_view token) const;  // -1 when absent
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  struct Cache;  // piece -> ids of short pieces, shared by threads (guarded)

  void merge(std::string_view piece, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::array<int32_t, 256> byte_id_{};                // id of each single-byte token
  std::unordered_map<uint64_t, Merge> merges_;        // key: left id << 32 | right id
  std::shared_ptr<Cache> cache_;
};

}  // namespace dsa
