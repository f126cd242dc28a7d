// BPE merging with a linked list of symbols and a priority queue of candidate merges, plus a cache
// of short pieces (most words repeat).
#include "engine/tokenizer/bpe.hpp"

#include <mutex>
#include <queue>

#include "engine/loader/json_text.hpp"
#include "engine/tokenizer/byte_level.hpp"

namespace dsa {
namespace {

constexpr size_t kMaxCachedPieceBytes = 64;
constexpr size_t kMaxCacheEntries = 100000;

uint64_t pair_key(int32_t left, int32_t right) {
  return static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32 | static_cast<uint32_t>(right);
}

// One merge line: "left right" or ["left", "right"].
Result<std::pair<std::string, std::string>> parse_merge(const nlohmann::json& m, const std::string& where,
                                                        size_t index) {
  const auto bad = [&] { return make_error(where + ": model.merges[" + std::to_string(index) + "] is not \"a b\" or [\"a\", \"b\"]"); };
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    const size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) return bad();
    return std::pair{s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return std::pair{m[0].get<std::string>(), m[1].get<std::string>()};
  return bad();
}

}  // namespace

struct Bpe::Cache {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>> ids;
};

Result<Bpe> Bpe::from_json(const nlohmann::json& model, const std::string& where) {
  if (!model.is_object() || model.value("type", "") != "BPE")
    return make_error(where + ": model.type is not \"BPE\"");
  for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && !model[key].is_null())
      return make_error(where + ": model." + key + " is not supported (expected null)");
  for (const char* key : {"byte_fallback", "ignore_merges"})
    if (model.value(key, false)) return make_error(where + ": model." + key + "=true is not supported");
  const auto vocab_it = model.find("vocab");
  const auto merges_it = model.find("merges");
  if (vocab_it == model.end() || !vocab_it->is_object()) return make_error(where + ": model.vocab is missing or not an object");
  if (merges_it == model.end() || !merges_it->is_array()) return make_error(where + ": model.merges is missing or not an array");

  Bpe bpe;
  bpe.vocab_.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      return make_error(where + ": model.vocab[\"" + printable(token, 80) + "\"] is not a non-negative integer id");
    bpe.vocab_.emplace(token, id.get<int32_t>());
  }
  for (int b = 0; b < 256; ++b) {
    bpe.byte_id_[b] = bpe.token_id(byte_level::byte_chars()[b]);
    if (bpe.byte_id_[b] < 0)
      return make_error(where + ": model.vocab has no token for byte " + std::to_string(b) + " (not a byte-level BPE)");
  }
  bpe.merges_.reserve(merges_it->size());
  for (size_t i = 0; i < merges_it->size(); ++i) {
    DSA_TRY(pair, parse_merge((*merges_it)[i], where, i));
    const int32_t left = bpe.token_id(pair.first), right = bpe.token_id(pair.second);
    const int32_t merged = bpe.token_id(pair.first + pair.second);
    if (left < 0 || right < 0 || merged < 0)
      return make_error(where + ": model.merges[" + std::to_string(i) + "] names a token missing from model.vocab");
    bpe.merges_.insert_or_assign(pair_key(left, right), Merge{static_cast<int32_t>(i), merged});
  }
  bpe.cache_ = std::make_shared<Cache>();
  return bpe;
}

int32_t Bpe::token_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

void Bpe::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() > kMaxCachedPieceBytes) return merge(piece, out);
  std::string key(piece);
  {
    std::lock_guard lock(cache_->mu);
    const auto it = cache_->ids.find(key);
    if (it != cache_->ids.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  merge(piece, out);
  std::lock_guard lock(cache_->mu);
  if (cache_->ids.size() < kMaxCacheEntries)
    cache_->ids.emplace(std::move(key), std::vector<int32_t>(out.begin() + first, out.end()));
}

void Bpe::merge(std::string_view piece, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the list, -1 at the ends
    bool alive;
  };
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const auto n = static_cast<int32_t>(piece.size());
  std::vector<Symbol> sym(piece.size());
  for (int32_t i = 0; i < n; ++i) sym[i] = {byte_id_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1, true};

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push_pair = [&](int32_t pos) {
    if (pos < 0 || sym[pos].next < 0) return;
    const auto it = merges_.find(pair_key(sym[pos].id, sym[sym[pos].next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    // Stale candidates: the left symbol was merged away, or its pair changed since it was queued.
    if (!left.alive || left.next < 0) continue;
    const auto it = merges_.find(pair_key(left.id, sym[left.next].id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    Symbol& right = sym[left.next];
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace dsa
