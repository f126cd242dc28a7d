// Generated DeepSeek-V3.2-format tokenizer: byte-level BPE trained on an embedded text.
#include "engine/tokenizer/make_tokenizer.hpp"

#include <algorithm>
#include <map>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/byte_level.hpp"
#include "engine/tokenizer/pre_tokenizer.hpp"

namespace dsa {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// The training text: plain English about the runner and its engine, then a little code in a few
// languages, so common words, identifiers, indentation and punctuation get their own tokens.
constexpr std::string_view kTrainingText = R"TEXT(
The agent reads the task, thinks about what to do next, calls a tool, and looks at the result.
It repeats these steps until the task is done or the step budget runs out. Each step is written
to the trajectory file, so a run that stops early can be inspected and resumed later.
The model is a sparse attention transformer. For every new token, a small indexer scores all the
previous tokens and keeps the best two thousand of them; the main attention then looks only at
those. This keeps the cost of a long context close to the cost of a short one.
Weights are stored in blocks of eight bit floating point numbers with one scale per block of
one hundred and twenty eight rows and columns. The loader maps the files into memory and checks
every tensor name, type and shape before the first token is computed.
When the context grows past the budget, the runner can summarise the history, drop the oldest
three quarters of the tool results, or start again from the task with a short note of progress.
Tests compare the engine with an independent reference on a tiny model, layer by layer, and the
fast kernels with the plain ones, op by op. A test that cannot fail is not a test.
Please write a short answer. What is the capital of France? Paris is the capital of France.
How many tokens does this sentence have? It depends on the tokenizer and on the vocabulary.
The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.
Hello! I am a helpful assistant. I can search the web, read files, run commands and edit code.
Numbers like 3.14159, 2048, 128000 and 1e-6 appear in configs; dates like 2025-10-02 in logs.
)TEXT"
R"TEXT(
def softmax(x):
    m = max(x)
    e = [math.exp(v - m) for v in x]
    s = sum(e)
    return [v / s for v in e]

class Tokenizer:
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.merges = {pair: rank for rank, pair in enumerate(merges)}

    def encode(self, text):
        return [self.vocab[t] for t in self.split(text)]

for (int64_t i = 0; i < n; ++i) {
  float acc = 0.0f;
  for (int64_t j = 0; j < k; ++j) acc += x[i * k + j] * w[j];
  y[i] = acc;
}

#include <vector>
std::vector<int32_t> ids = tokenizer.encode(text, /*allow_special=*/false);
if (!result.ok()) return result.error();

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    println!("{} arguments", args.len());
    Ok(())
}

const response = await fetch("https://example.com/api/v1/chat", { method: "POST" });
const data = await response.json();
console.log(data.choices[0].message.content);

{"role": "user", "content": "list the files"}, {"role": "assistant", "tool_calls": []}
SELECT name, count(*) FROM runs WHERE status = 'done' GROUP BY name ORDER BY 2 DESC;
git status && make -j2 test || echo "build failed" >&2
)TEXT";

struct AddedSpec {
  std::string content;
  bool special;
  bool normalized;
};

// The real added-token block, by offset from its first id (real first id 128000).
std::vector<AddedSpec> added_token_block() {
  std::vector<AddedSpec> block;
  for (int64_t i = 0; i < 798; ++i)
    block.push_back({"<｜place▁holder▁no▁" + std::to_string(i) + "｜>", true, false});
  block[793] = {"｜DSML｜", true, false};  // V3.2's tool-markup token (real id 128793)
  const char* named[] = {"<think>", "</think>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>",
                         "<｜User｜>", "<｜Assistant｜>", "<|EOT|>", "<｜tool▁calls▁begin｜>",
                         "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
                         "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
                         "<｜tool▁output▁end｜>", "<｜tool▁sep｜>"};
  for (const char* n : named) block.push_back({n, std::string_view(n) == "<|EOT|>", true});
  return block;
}

std::string to_vocab_spelling(std::string_view bytes) {
  std::string s;
  for (unsigned char b : bytes) s += byte_level::byte_chars()[b];
  return s;
}

// Byte-level BPE training: start from single bytes, repeatedly merge the most frequent adjacent
// pair (ties: the lexicographically smallest pair of byte strings) until `max_merges` or no pair.
struct Trained {
  std::vector<std::string> tokens;  // byte strings; 0..255 are the single bytes
  std::vector<std::pair<int32_t, int32_t>> merges;
};

Trained train_bpe(std::string_view text, int64_t max_merges) {
  Trained t;
  for (int b = 0; b < 256; ++b) t.tokens.push_back(std::string(1, char(b)));
  std::map<std::string, int64_t> word_count;
  for (const Piece& p : pre_tokenize(text)) ++word_count[std::string(text.substr(p.begin, p.end - p.begin))];
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, n] : word_count) {
    std::vector<int32_t> sym;
    for (unsigned char b : w) sym.push_back(b);
    words.push_back(std::move(sym));
    freq.push_back(n);
  }
  std::unordered_map<std::string, int32_t> token_id;
  for (int b = 0; b < 256; ++b) token_id[t.tokens[b]] = b;
  while (static_cast<int64_t>(t.merges.size()) < max_merges) {
    std::unordered_map<uint64_t, int64_t> pair_count;
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t i = 0; i + 1 < words[w].size(); ++i)
        pair_count[(uint64_t(uint32_t(words[w][i])) << 32) | uint32_t(words[w][i + 1])] += freq[w];
    if (pair_count.empty()) break;
    uint64_t best = 0;
    int64_t best_n = 0;
    for (const auto& [key, n] : pair_count) {
      const auto str = [&](uint64_t k) {
        return std::make_pair(std::string_view(t.tokens[k >> 32]), std::string_view(t.tokens[uint32_t(k)]));
      };
      if (n > best_n || (n == best_n && str(key) < str(best))) {
        best = key;
        best_n = n;
      }
    }
    const int32_t a = int32_t(best >> 32), b = int32_t(uint32_t(best));
    const std::string merged = t.tokens[a] + t.tokens[b];
    auto [it, fresh] = token_id.emplace(merged, int32_t(t.tokens.size()));
    if (fresh) t.tokens.push_back(merged);
    t.merges.emplace_back(a, b);
    for (auto& word : words) {
      std::vector<int32_t> out;
      out.reserve(word.size());
      for (size_t i = 0; i < word.size(); ++i) {
        if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
          out.push_back(it->second);
          ++i;
        } else {
          out.push_back(word[i]);
        }
      }
      word = std::move(out);
    }
  }
  return t;
}

ordered_json added_token_json(int64_t id, const AddedSpec& s) {
  ordered_json j;
  j["id"] = id;
  j["content"] = s.content;
  j["single_word"] = false;
  j["lstrip"] = false;
  j["rstrip"] = false;
  j["normalized"] = s.normalized;
  j["special"] = s.special;
  return j;
}

}  // namespace

Result<std::string> make_tokenizer_json(int64_t vocab_size) {
  constexpr int64_t n_base = 3 + 256;  // three specials, then the bytes
  if (vocab_size < n_base + kAddedTokenBlockSize)
    return make_error("vocab_size " + std::to_string(vocab_size) + " is too small for a tokenizer (at least " +
                      std::to_string(n_base + kAddedTokenBlockSize) + ")");
  // Each merge adds at most one token, so the BPE ids stay within the spare ids.
  const Trained t = train_bpe(kTrainingText, vocab_size - kAddedTokenBlockSize - n_base);

  const std::vector<AddedSpec> front = {{"<｜begin▁of▁sentence｜>", true, false},
                                        {"<｜end▁of▁sentence｜>", true, false},
                                        {"<｜▁pad▁｜>", true, false}};
  ordered_json vocab = ordered_json::object();
  for (size_t i = 0; i < front.size(); ++i) vocab[front[i].content] = i;
  // Byte tokens in the order of their characters' code points, as in the real vocabulary.
  std::vector<int> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = b;
  const auto code_point = [](int b) {
    const std::string& s = byte_level::byte_chars()[b];
    return s.size() == 1 ? int(uint8_t(s[0])) : ((uint8_t(s[0]) & 0x1f) << 6) | (uint8_t(s[1]) & 0x3f);
  };
  std::sort(bytes.begin(), bytes.end(), [&](int x, int y) { return code_point(x) < code_point(y); });
  int64_t next = n_base - 256;
  for (int b : bytes) vocab[byte_level::byte_chars()[b]] = next++;
  for (size_t i = 256; i < t.tokens.size(); ++i) vocab[to_vocab_spelling(t.tokens[i])] = next++;
  json merges = json::array();
  for (const auto& [a, b] : t.merges) merges.push_back(to_vocab_spelling(t.tokens[a]) + " " + to_vocab_spelling(t.tokens[b]));

  const int64_t first_added = next;
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < front.size(); ++i) added.push_back(added_token_json(int64_t(i), front[i]));
  const std::vector<AddedSpec> block = added_token_block();
  for (size_t i = 0; i < block.size(); ++i) added.push_back(added_token_json(first_added + int64_t(i), block[i]));

  ordered_json pre_stages = ordered_json::array();
  for (std::string_view pattern : kDeepSeekV3SplitPatterns) {
    ordered_json s;
    s["type"] = "Split";
    s["pattern"] = {{"Regex", pattern}};
    s["behavior"] = "Isolated";
    s["invert"] = false;
    pre_stages.push_back(s);
  }
  pre_stages.push_back(
      ordered_json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});

  ordered_json doc;
  doc["version"] = "1.0";
  doc["truncation"] = nullptr;
  doc["padding"] = nullptr;
  doc["added_tokens"] = added;
  doc["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}};
  doc["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", pre_stages}};
  doc["post_processor"] = nullptr;
  doc["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  ordered_json model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["vocab"] = vocab;
  model["merges"] = merges;
  doc["model"] = model;
  return doc.dump(1) + "\n";
}

std::string make_tokenizer_config_json() {
  ordered_json j;
  j["add_bos_token"] = false;
  j["add_eos_token"] = false;
  j["bos_token"] = {{"__type", "AddedToken"}, {"content", "<｜begin▁of▁sentence｜>"}, {"lstrip", false},
                    {"normalized", true}, {"rstrip", false}, {"single_word", false}};
  j["clean_up_tokenization_spaces"] = false;
  j["eos_token"] = {{"__type", "AddedToken"}, {"content", "<｜end▁of▁sentence｜>"}, {"lstrip", false},
                    {"normalized", true}, {"rstrip", false}, {"single_word", false}};
  j["legacy"] = true;
  j["model_max_length"] = 131072;
  j["pad_token"] = {{"__type", "AddedToken"}, {"content", "<｜end▁of▁sentence｜>"}, {"lstrip", false},
                    {"normalized", true}, {"rstrip", false}, {"single_word", false}};
  j["sp_model_kwargs"] = json::object();
  j["unk_token"] = nullptr;
  j["tokenizer_class"] = "LlamaTokenizerFast";
  return j.dump(2) + "\n";
}

}  // namespace dsa
