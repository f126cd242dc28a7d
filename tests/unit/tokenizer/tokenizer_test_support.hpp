// Shared by the tokenizer tests and the libFuzzer target: a tiny hand-made tokenizer.json and the
// properties every input must satisfy.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/byte_level.hpp"
#include "engine/tokenizer/pre_tokenizer.hpp"
#include "engine/tokenizer/tokenizer.hpp"
#include "engine/tokenizer/utf8.hpp"

namespace dsa::test {

// DeepSeek-V3's pre-tokenizer stages as they appear in its tokenizer.json.
inline nlohmann::json deepseek_v3_pre_tokenizer() {
  nlohmann::json stages = nlohmann::json::array();
  for (std::string_view pattern : kDeepSeekV3SplitPatterns)
    stages.push_back({{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}});
  stages.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", stages}};
}

// A small tokenizer.json in the DeepSeek layout: specials at 0..2, the 256 byte tokens at 3..258,
// a few merges (string and array forms), ｜DSML｜ as a special token and <think> as a plain added one.
inline nlohmann::json tiny_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::byte_chars()[b]] = 3 + b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"a", "a"}, {"aa", "a"}};
  nlohmann::json merge_list = nlohmann::json::array();
  int next = 259;
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [a, b] = merges[i];
    vocab[a + b] = next++;
    if (i % 2 == 0)
      merge_list.push_back(a + " " + b);
    else
      merge_list.push_back({a, b});
  }
  const auto added = [](int id, const char* content, bool special) {
    return nlohmann::json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", !special}, {"special", special}};
  };
  return {{"version", "1.0"},
          {"added_tokens",
           {added(0, "<｜begin▁of▁sentence｜>", true), added(1, "<｜end▁of▁sentence｜>", true),
            added(2, "<｜▁pad▁｜>", true), added(next, "｜DSML｜", true), added(next + 1, "<think>", false)}},
          {"normalizer", nullptr},
          {"pre_tokenizer", deepseek_v3_pre_tokenizer()},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"vocab", vocab}, {"merges", merge_list}}}};
}

// What must hold for any input bytes: the ids carry the exact bytes, decode is their lossy UTF-8,
// and streaming gives the same text. Returns a description of the first violation, or "".
inline std::string check_any_input(const Tokenizer& tok, std::string_view input, bool allow_special) {
  const std::vector<int32_t> ids = tok.encode(input, allow_special);
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.n_ids()) return "id out of range";
    bytes += tok.token_bytes(id);
  }
  if (bytes != input) return "token bytes differ from the input";
  const std::string text = tok.decode(ids);
  if (text != utf8::to_valid_lossy(input)) return "decode differs from the lossy input";
  StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (streamed != text) return "streamed text differs from decode";
  return "";
}

}  // namespace dsa::test
