// Whether a checkpoint's tokenizer.json fits its config.json: every id the tokenizer can produce is
// a row of the model's vocabulary, and the special tokens of the DeepSeek-V3.2 chat format are
// single tokens, with the config's BOS and EOS ids. A tokenizer that does not fit encodes the chat
// template as plain text, or feeds the model ids past its embedding: checked before the first
// request, with an error naming both files.
#pragma once
#include <filesystem>

#include "engine/api/result.hpp"
#include "engine/model/config.hpp"
#include "engine/tokenizer/tokenizer.hpp"

namespace dsa {

Result<void> check_tokenizer_fits(const Tokenizer& tokenizer, const ModelConfig& config);

// A checkpoint directory's tokenizer.json, checked against its config.json before any weight is
// loaded; a misfit's error starts with the directory.
Result<Tokenizer> load_checked_tokenizer(const std::filesystem::path& dir);

}  // namespace dsa
