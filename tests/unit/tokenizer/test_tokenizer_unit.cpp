// Tokenizer behaviour on a tiny hand-made tokenizer.json and on edge cases: merges in both forms,
// special tokens, decoding and streaming, invalid UTF-8, load errors.
#include <doctest/doctest.h>

#include "engine/tokenizer/pre_tokenizer.hpp"
#include "tests/test_support.hpp"
#include "tests/unit/tokenizer/tokenizer_test_support.hpp"

namespace dsa::test {
namespace {

Tokenizer tiny() {
  auto r = Tokenizer::from_json_text(tiny_tokenizer_json().dump(), "tiny.json");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  return std::move(r).value();
}

int32_t byte_id(char c) { return 3 + static_cast<uint8_t>(c); }

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (const Piece& p : pre_tokenize(text)) out.emplace_back(text.substr(p.begin, p.end - p.begin));
  return out;
}

TEST_CASE("merges given as \"a b\" and as [\"a\", \"b\"] both apply, lowest rank first") {
  const Tokenizer tok = tiny();
  // hello -> he ll o -> hell o -> hello (ranks 0,1,2,3 across both merge forms)
  CHECK(tok.encode("hello", false) == std::vector<int32_t>{tok.token_id("hello")});
  CHECK(tok.token_id("hello") == 262);
  // " wo": Ġw merges; the rest stays bytes.
  CHECK(tok.encode(" wo", false) == std::vector<int32_t>{tok.token_id("Ġw"), byte_id('o')});
  // Equal ranks merge leftmost first, and a lower rank beats position: a a a a -> aa a a -> aa aa
  // (a+a ranks before aa+a), while a a a -> aa a -> aaa.
  CHECK(tok.encode("aaaa", false) == std::vector<int32_t>{tok.token_id("aa"), tok.token_id("aa")});
  CHECK(tok.encode("aaa", false) == std::vector<int32_t>{tok.token_id("aaa")});
}

TEST_CASE("added tokens: matched only in template text, decoded to their text, never skipped") {
  const Tokenizer tok = tiny();
  const int32_t dsml = tok.token_id("｜DSML｜");
  REQUIRE(dsml > 0);
  CHECK(tok.is_special(dsml));
  CHECK(tok.is_special(0));
  CHECK_FALSE(tok.is_special(tok.token_id("<think>")));
  CHECK(tok.n_ids() == dsml + 2);

  const std::string text = "<｜DSML｜invoke><think>";
  const auto templ = tok.encode(text, true);
  REQUIRE(templ.size() == 10);
  CHECK(templ[0] == byte_id('<'));
  CHECK(templ[1] == dsml);
  CHECK(templ.back() == tok.token_id("<think>"));
  CHECK(tok.decode(templ) == text);
  const auto plain = tok.encode(text, false);
  CHECK(std::find(plain.begin(), plain.end(), dsml) == plain.end());
  CHECK(tok.decode(plain) == text);
  CHECK(tok.token_text(dsml) == "｜DSML｜");
  CHECK(tok.token_text(byte_id(' ')) == "Ġ");
  CHECK(tok.token_bytes(byte_id(' ')) == " ");
}

TEST_CASE("pre-tokenizer stages run one after another") {
  CHECK(pieces("12345 abc") == std::vector<std::string>{"123", "45", " abc"});
  CHECK(pieces("深度求索abc") == std::vector<std::string>{"深度求索", "abc"});
  CHECK(pieces("ひらがなカタカナ") == std::vector<std::string>{"ひらがなカタカナ"});
  CHECK(pieces("a.b!!c") == std::vector<std::string>{"a", ".b", "!!", "c"});
  CHECK(pieces("x  \n\n  y") == std::vector<std::string>{"x", "  \n\n", " ", " y"});
  // \s+(?!\S) cannot see past the digit boundary of stage 1: the whole run stays one piece.
  CHECK(pieces("a   1") == std::vector<std::string>{"a", "   ", "1"});
  CHECK(pieces("a   b") == std::vector<std::string>{"a", "  ", " b"});
  CHECK(pieces("e\xCC\x81t\xC3\xA9") == std::vector<std::string>{"e\xCC\x81t\xC3\xA9"});
  CHECK(pieces("").empty());
}

TEST_CASE("invalid UTF-8 is encoded byte for byte and decodes with U+FFFD") {
  const Tokenizer tok = tiny();
  const std::string bad = "ok\xFF\xC3(\xE2\x82 \xF0\x9F\x98";
  const auto ids = tok.encode(bad, false);
  std::string bytes;
  for (int32_t id : ids) bytes += tok.token_bytes(id);
  CHECK(bytes == bad);
  CHECK(tok.decode(ids) == "ok\xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD \xEF\xBF\xBD");
  CHECK(check_any_input(tok, bad, false) == "");
}

TEST_CASE("the stream decoder holds back partial UTF-8 until complete") {
  const Tokenizer tok = tiny();
  StreamDecoder s(tok);
  // U+1F600 is F0 9F 98 80; each byte is its own token in the tiny vocabulary.
  CHECK(s.push(byte_id('a')) == "a");
  CHECK(s.push(byte_id('\xF0')) == "");
  CHECK(s.push(byte_id('\x9F')) == "");
  CHECK(s.push(byte_id('\x98')) == "");
  CHECK(s.push(byte_id('\x80')) == "\xF0\x9F\x98\x80");
  CHECK(s.push(byte_id('\xE2')) == "");
  CHECK(s.push(byte_id('b')) == "\xEF\xBF\xBD" "b");  // a sequence broken off is replaced, not held
  CHECK(s.push(byte_id('\xC3')) == "");
  CHECK(s.flush() == "\xEF\xBF\xBD");
  CHECK(s.flush() == "");
  CHECK(s.push(tok.token_id("｜DSML｜")) == "｜DSML｜");
  CHECK(s.push(-5) == "");
}

TEST_CASE("load errors name the file and the problem") {
  TempDir dir("tok");
  auto missing = Tokenizer::load(dir / "tokenizer.json");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message ==
        (dir / "tokenizer.json").string() + ": cannot open tokenizer file: No such file or directory");

  write_text(dir / "bad.json", "{\"model\": ");
  auto malformed = Tokenizer::load(dir / "bad.json");
  REQUIRE_FALSE(malformed.ok());
  CHECK(malformed.error().message == (dir / "bad.json").string() + ": not a valid JSON object");

  const auto error_of = [](nlohmann::json j) {
    auto r = Tokenizer::from_json_text(j.dump(), "t.json");
    return r.ok() ? std::string("loaded") : r.error().message;
  };
  auto j = tiny_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"] = "\\s+";
  CHECK(error_of(j) == "t.json: pre_tokenizer pretokenizers[2].pattern.Regex differs from DeepSeek-V3's "
                       "(only the DeepSeek-V3 pre-tokenizer is supported)");
  j = tiny_tokenizer_json();
  j["model"]["merges"][0] = "h e x";
  CHECK(error_of(j) == "t.json: model.merges[0] is not \"a b\" or [\"a\", \"b\"]");
  j = tiny_tokenizer_json();
  j["model"]["merges"].push_back("q zz");
  CHECK(error_of(j) == "t.json: model.merges[7] names a token missing from model.vocab");
  j = tiny_tokenizer_json();
  j["model"]["vocab"].erase("Ġ");
  CHECK(error_of(j) == "t.json: model.vocab has no token for byte 32 (not a byte-level BPE)");
  j = tiny_tokenizer_json();
  j["added_tokens"][0]["lstrip"] = true;
  CHECK(error_of(j) == "t.json: added_tokens[0].lstrip=true is not supported");
  j = tiny_tokenizer_json();
  j["model"]["type"] = "Unigram";
  CHECK(error_of(j) == "t.json: model.type is not \"BPE\"");
}

}  // namespace
}  // namespace dsa::test
