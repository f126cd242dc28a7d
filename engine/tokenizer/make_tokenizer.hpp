// A small tokenizer in the exact DeepSeek-V3.2 tokenizer.json format, for generated checkpoints
// (`dsagent make-model`): the DeepSeek-V3 pre-tokenizer and ByteLevel decoder, ids 0/1/2 for the
// begin/end-of-sentence and pad specials, the 256 byte tokens, merges learned deterministically
// from a short embedded English and code text, and the real added-token block (placeholders,
// <think>, </think>, <｜User｜>, <｜Assistant｜>, ｜DSML｜, ...) at the same offsets from its first
// id as in the real file (model-spec 9). Not a tokenizer for real text; a correct one for tests
// and benchmarks.
#pragma once
#include <cstdint>
#include <string>

#include "engine/api/result.hpp"

namespace dsa {

// The number of added tokens after the BPE vocabulary (real ids 128000..128814).
inline constexpr int64_t kAddedTokenBlockSize = 815;

// tokenizer.json text whose ids all lie below vocab_size: the BPE vocabulary (at most
// vocab_size - kAddedTokenBlockSize ids) followed directly by the added-token block.
Result<std::string> make_tokenizer_json(int64_t vocab_size);

// tokenizer_config.json text (no chat template, as the real file).
std::string make_tokenizer_config_json();

}  // namespace dsa
