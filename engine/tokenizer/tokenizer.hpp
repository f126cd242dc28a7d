// The DeepSeek-V3 tokenizer: an HF tokenizer.json with a byte-level BPE model, the DeepSeek-V3
// pre-tokenizer (pre_tokenizer.hpp), added tokens and the ByteLevel decoder. Encodes like HF
// `tokenizers` with add_special_tokens=false.
//
// Text is bytes: invalid UTF-8 is encoded byte for byte (to the pre-tokenizer each invalid byte is
// a character of no class), so ids always carry the exact input bytes. decode() returns valid
// UTF-8, replacing each maximal invalid subpart with U+FFFD like the peer; decode(encode(x)) == x
// for valid UTF-8 x.
// All const methods may be called from several threads at once.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

class Tokenizer {
 public:
  static Result<Tokenizer> load(const std::filesystem::path& tokenizer_json);
  // json_text: the contents of a tokenizer.json; where: its name in error messages.
  static Result<Tokenizer> from_json_text(std::string_view json_text, const std::string& where);

  // allow_special=false: added/special tokens spelled in the text are NOT matched, the text is plain
  // (untrusted content: user text, files, web pages, tool results). true: template text.
  std::vector<int32_t> encode(std::string_view text, bool allow_special) const;
  // Ids with no token are skipped, as by the peer. Special tokens decode to their text (none is
  // ever skipped: ｜DSML｜ is tool markup).
  std::string decode(std::span<const int32_t> ids) const;

  int32_t token_id(std::string_view token_text) const;  // -1 when absent; vocab spelling ("Ġhi")
  std::optional<std::string> token_text(int32_t id) const;
  // Raw bytes token `id` decodes to (possibly part of a UTF-8 sequence); empty for ids with no token.
  std::string_view token_bytes(int32_t id) const;
  int64_t n_ids() const;  // highest id + 1
  bool is_special(int32_t id) const;

 private:
  Tokenizer() = default;
  struct Impl;
  std::shared_ptr<const Impl> impl_;  // immutable after load (but for the guarded word cache); copies share it
};

// Incremental decoding for streaming output. push() returns the text newly completed by `id`;
// a partial UTF-8 sequence is held back until complete. The concatenation of every push() and the
// final flush() equals Tokenizer::decode of all ids. The tokenizer must outlive the decoder.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}
  std::string push(int32_t id);
  std::string flush();  // what is held back, invalid parts replaced by U+FFFD

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
};

}  // namespace dsa
