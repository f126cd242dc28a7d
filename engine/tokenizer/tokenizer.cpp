// Tokenizer: loading and checking tokenizer.json, encoding and decoding.
#include "engine/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "engine/loader/file_checks.hpp"
#include "engine/loader/json_text.hpp"
#include "engine/tokenizer/added_tokens.hpp"
#include "engine/tokenizer/bpe.hpp"
#include "engine/tokenizer/byte_level.hpp"
#include "engine/tokenizer/pre_tokenizer.hpp"
#include "engine/tokenizer/utf8.hpp"

namespace dsa {

using nlohmann::json;

struct Tokenizer::Impl {
  Bpe bpe;
  std::unordered_map<std::string, int32_t> added_id;  // content -> id
  AddedTokenMatcher matcher;
  std::vector<std::optional<std::string>> text_of_id;  // [n_ids]; vocab spelling or added content
  std::vector<std::string> bytes_of_id;               // [n_ids]; what each id decodes to
  std::vector<bool> special_of_id;                    // [n_ids]
};

namespace {

// The pre-tokenizer must be exactly DeepSeek-V3's: it is implemented by hand, not interpreted.
Result<void> check_pre_tokenizer(const json& pre, const std::string& where) {
  const auto bad = [&](const std::string& what) {
    return make_error(where + ": pre_tokenizer " + what + " (only the DeepSeek-V3 pre-tokenizer is supported)");
  };
  if (!pre.is_object() || pre.value("type", "") != "Sequence" || !pre.contains("pretokenizers") ||
      !pre["pretokenizers"].is_array() || pre["pretokenizers"].size() != 4)
    return bad("is not a Sequence of 3 Split stages and ByteLevel");
  const json& stages = pre["pretokenizers"];
  for (size_t i = 0; i < 3; ++i) {
    const json& s = stages[i];
    const std::string stage = "pretokenizers[" + std::to_string(i) + "]";
    if (!s.is_object() || s.value("type", "") != "Split" || s.value("behavior", "") != "Isolated" ||
        s.value("invert", true))
      return bad(stage + " is not a Split with behavior Isolated and invert false");
    const json pattern = s.value("pattern", json::object());
    if (!pattern.is_object() || !pattern.contains("Regex") || pattern["Regex"] != kDeepSeekV3SplitPatterns[i])
      return bad(stage + ".pattern.Regex differs from DeepSeek-V3's");
  }
  const json& bl = stages[3];
  if (!bl.is_object() || bl.value("type", "") != "ByteLevel" || bl.value("add_prefix_space", true) ||
      bl.value("use_regex", true))
    return bad("pretokenizers[3] is not a ByteLevel with add_prefix_space and use_regex false");
  return {};
}

Result<void> check_normalizer_and_decoder(const json& doc, const std::string& where) {
  const json normalizer = doc.value("normalizer", json());
  const bool no_normalizer = normalizer.is_null() ||
                             (normalizer.is_object() && normalizer.value("type", "") == "Sequence" &&
                              normalizer.value("normalizers", json::array()).empty());
  if (!no_normalizer) return make_error(where + ": normalizer is not supported (expected null or an empty Sequence)");
  const json decoder = doc.value("decoder", json());
  if (!decoder.is_object() || decoder.value("type", "") != "ByteLevel")
    return make_error(where + ": decoder is not ByteLevel");
  return {};
}

Result<std::vector<AddedToken>> parse_added_tokens(const json& doc, const std::string& where) {
  std::vector<AddedToken> out;
  const json list = doc.value("added_tokens", json::array());
  if (!list.is_array()) return make_error(where + ": added_tokens is not an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string name = where + ": added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
        t["id"].get<int64_t>() > INT32_MAX || !t.contains("content") || !t["content"].is_string())
      return make_error(name + " needs a non-negative integer id and a string content");
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      if (t.value(flag, false)) return make_error(name + "." + flag + "=true is not supported");
    out.push_back({t["id"].get<int32_t>(), t["content"].get<std::string>(), t.value("special", false),
                   t.value("normalized", false)});
  }
  return out;
}

}  // namespace

Result<Tokenizer> Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  DSA_TRY(text, read_text_file(tokenizer_json, "tokenizer file"));
  return from_json_text(text, tokenizer_json.string());
}

Result<Tokenizer> Tokenizer::from_json_text(std::string_view json_text, const std::string& where) {
  // The checks below copy parts of the document (json::value), which recurses per nesting level.
  const JsonDoc parsed = parse_json_doc(json_text);
  if (parsed.too_deep) return make_error(where + ": " + parsed.error());
  const json& doc = parsed.value;
  if (!parsed.ok() || !doc.is_object()) return make_error(where + ": not a valid JSON object");
  if (auto r = check_normalizer_and_decoder(doc, where); !r) return r.error();
  if (auto r = check_pre_tokenizer(doc.value("pre_tokenizer", json()), where); !r) return r.error();
  DSA_TRY(bpe, Bpe::from_json(doc.value("model", json()), where));
  DSA_TRY(added, parse_added_tokens(doc, where));

  int64_t n_ids = 0;
  for (const auto& [token, id] : bpe.vocab()) n_ids = std::max<int64_t>(n_ids, id + 1);
  for (const AddedToken& t : added) n_ids = std::max<int64_t>(n_ids, t.id + 1);
  std::vector<std::optional<std::string>> text_of_id(n_ids);
  std::vector<std::string> bytes_of_id(n_ids);
  std::vector<bool> special_of_id(n_ids, false);
  // HF's ByteLevel decoder maps a token's characters back to bytes, or, when one is outside the
  // byte map (added tokens like "<｜User｜>"), passes the token's UTF-8 through.
  const auto set = [&](int32_t id, const std::string& token) {
    text_of_id[id] = token;
    bytes_of_id[id] = byte_level::to_bytes(token).value_or(token);
  };
  for (const auto& [token, id] : bpe.vocab()) set(id, token);
  for (const AddedToken& t : added) {  // added tokens win over the vocabulary, as in HF
    set(t.id, t.content);
    special_of_id[t.id] = t.special;
  }
  std::unordered_map<std::string, int32_t> added_id;
  for (const AddedToken& t : added) added_id.insert_or_assign(t.content, t.id);
  Tokenizer tok;
  tok.impl_ = std::make_shared<const Impl>(Impl{std::move(bpe), std::move(added_id), AddedTokenMatcher(added),
                                                std::move(text_of_id), std::move(bytes_of_id),
                                                std::move(special_of_id)});
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  const auto encode_plain = [&](std::string_view plain) {
    for (const Piece& p : pre_tokenize(plain)) impl_->bpe.encode_piece(plain.substr(p.begin, p.end - p.begin), ids);
  };
  if (!allow_special) {
    encode_plain(text);
    return ids;
  }
  for (const TextSegment& s : impl_->matcher.split(text)) {
    if (s.id >= 0)
      ids.push_back(s.id);
    else
      encode_plain(s.text);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string bytes;
  for (int32_t id : ids) bytes += token_bytes(id);
  return utf8::to_valid_lossy(bytes);
}

int32_t Tokenizer::token_id(std::string_view token_text) const {
  const auto it = impl_->added_id.find(std::string(token_text));
  return it != impl_->added_id.end() ? it->second : impl_->bpe.token_id(token_text);
}

std::optional<std::string> Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= n_ids()) return std::nullopt;
  return impl_->text_of_id[id];
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= n_ids()) return {};
  return impl_->bytes_of_id[id];
}

int64_t Tokenizer::n_ids() const { return static_cast<int64_t>(impl_->text_of_id.size()); }

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < n_ids() && impl_->special_of_id[id]; }

std::string StreamDecoder::push(int32_t id) {
  pending_ += tokenizer_->token_bytes(id);
  const size_t n = utf8::complete_prefix(pending_);
  std::string out = utf8::to_valid_lossy(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = utf8::to_valid_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace dsa
