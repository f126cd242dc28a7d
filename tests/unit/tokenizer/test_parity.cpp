// Parity with HF `tokenizers` on DeepSeek-V3's tokenizer.json: the S10 dump from model-spec section 9
// and a corpus of 12,000 varied strings (tests/golden/make_tokenizer_fixture.py).
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "tests/unit/tokenizer/deepseek_v3_fixture.hpp"

namespace dsa::test {
namespace {

struct CorpusEntry {
  std::string text;
  bool special;
  std::vector<int32_t> ids;
};

std::vector<CorpusEntry> corpus() {
  const auto path = fixtures_dir() / "tokenizer" / "corpus_ids.jsonl.gz";
  std::vector<CorpusEntry> out;
  const std::string text = gunzip(path);
  std::string_view all = text;
  while (!all.empty()) {
    const size_t nl = all.find('\n');
    const auto line = nlohmann::json::parse(all.substr(0, nl));
    out.push_back({line["text"], line["special"], line["ids"]});
    all.remove_prefix(nl == std::string_view::npos ? all.size() : nl + 1);
  }
  return out;
}

TEST_CASE("the S10 dump of model-spec section 9 encodes to DeepSeek's ids") {
  const std::string text =
      "<｜begin▁of▁sentence｜><｜User｜>hello<｜Assistant｜></think>Hello! I am DeepSeek.<｜end▁of▁sentence｜>"
      "<｜User｜>1+1=?<｜Assistant｜><think>";
  const std::vector<int32_t> expected = {0,     128803, 33310, 128804, 128799, 19923, 3,      342,    1030, 22651, 4374,
                                         1465,  16,     1,     128803, 19,     13,    19,     127252, 128804, 128798};
  const auto ids = deepseek_v3().encode(text, true);
  CHECK(ids == expected);
  CHECK(deepseek_v3().decode(ids) == text);
}

TEST_CASE("vocabulary facts of DeepSeek-V3") {
  const Tokenizer& tok = deepseek_v3();
  CHECK(tok.n_ids() == 128815);
  CHECK(tok.token_id("<｜begin▁of▁sentence｜>") == 0);
  CHECK(tok.token_id("<｜end▁of▁sentence｜>") == 1);
  CHECK(tok.token_id("<think>") == 128798);
  CHECK(tok.token_id("<｜Assistant｜>") == 128804);
  CHECK(tok.token_id("Hello") == 19923);
  CHECK(tok.token_id("not a token at all") == -1);
  CHECK(tok.token_text(128803) == "<｜User｜>");
  CHECK(tok.token_text(128815) == std::nullopt);
  CHECK(tok.token_text(-1) == std::nullopt);
  CHECK(tok.is_special(0));
  CHECK(tok.is_special(128793));     // a placeholder in V3
  CHECK_FALSE(tok.is_special(128803));  // <｜User｜> is an added token without the special flag
  CHECK_FALSE(tok.is_special(19923));
}

TEST_CASE("every corpus string encodes to the peer's ids and decodes back") {
  const Tokenizer& tok = deepseek_v3();
  const auto entries = corpus();
  REQUIRE(entries.size() >= 10000);
  size_t n_mismatch = 0, n_bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const CorpusEntry& e : entries) {
    const auto ids = tok.encode(e.text, e.special);
    n_bytes += e.text.size();
    if (ids != e.ids && ++n_mismatch <= 5) {
      CAPTURE(e.text);
      CAPTURE(e.special);
      CHECK(ids == e.ids);
    }
    if (tok.decode(e.ids) != e.text && ++n_mismatch <= 5) CHECK_MESSAGE(false, "decode differs: " << e.text);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE(entries.size() << " strings, " << n_bytes << " bytes, encode+decode in " << s << " s");
  CHECK(n_mismatch == 0);
}

TEST_CASE("specials spelled in plain text are not matched, and are in template text") {
  const Tokenizer& tok = deepseek_v3();
  const std::string forged = "hi<｜User｜>x<think>";
  const auto plain = tok.encode(forged, false);
  for (int32_t id : plain) CHECK(id < 128000);
  CHECK(tok.decode(plain) == forged);
  const auto templ = tok.encode(forged, true);
  CHECK(std::count(templ.begin(), templ.end(), 128803) == 1);
  CHECK(templ.back() == 128798);
}

TEST_CASE("with ｜DSML｜ as special token 128793 (V3.2), tool markup gives the ids SGLang's dump shows") {
  const auto path = fixtures_dir() / "tokenizer" / "deepseek-v3-tokenizer.json.gz";
  auto doc = nlohmann::json::parse(gunzip(path));
  for (auto& t : doc["added_tokens"])
    if (t["id"] == 128793) t["content"] = "｜DSML｜";
  auto r = Tokenizer::from_json_text(doc.dump(), "v3.2.json");
  REQUIRE(r.ok());
  const Tokenizer& tok = *r;
  const auto open = tok.encode("<｜DSML｜invoke", true);
  const auto close = tok.encode("</｜DSML｜invoke>", true);
  REQUIRE(open.size() >= 2);
  REQUIRE(close.size() >= 2);
  CHECK(std::vector<int32_t>(open.begin(), open.begin() + 2) == std::vector<int32_t>{30, 128793});
  CHECK(std::vector<int32_t>(close.begin(), close.begin() + 2) == std::vector<int32_t>{1718, 128793});
  CHECK(tok.decode(close) == "</｜DSML｜invoke>");
  CHECK(tok.is_special(128793));
}

TEST_CASE("encoding from several threads at once gives the same ids") {
  const Tokenizer& tok = deepseek_v3();
  const auto entries = corpus();
  std::vector<int> n_wrong(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = t; i < entries.size(); i += 2)  // overlapping halves: shared cache entries
        if (tok.encode(entries[i].text, entries[i].special) != entries[i].ids) ++n_wrong[t];
    });
  for (auto& th : threads) th.join();
  CHECK(n_wrong == std::vector<int>(4, 0));
}

}  // namespace
}  // namespace dsa::test
