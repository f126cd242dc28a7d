// The generated tokenizer loads, round-trips text and keeps the real added tokens' relative ids.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/make_tokenizer.hpp"
#include "engine/tokenizer/tokenizer.hpp"

using namespace dsa;

namespace {

Tokenizer load(int64_t vocab_size) {
  const auto text = make_tokenizer_json(vocab_size);
  REQUIRE_MESSAGE(text.ok(), (text.ok() ? "" : text.error().message));
  auto tok = Tokenizer::from_json_text(*text, "tokenizer.json");
  REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? "" : tok.error().message));
  return std::move(tok).value();
}

}  // namespace

TEST_CASE("special tokens: 0/1/2 first, the added block at the real relative offsets") {
  for (const int64_t vocab : {2048, 32000}) {
    INFO("vocab " << vocab);
    const Tokenizer tok = load(vocab);
    CHECK(tok.n_ids() <= vocab);
    CHECK(tok.token_id("<｜begin▁of▁sentence｜>") == 0);
    CHECK(tok.token_id("<｜end▁of▁sentence｜>") == 1);
    CHECK(tok.token_id("<｜▁pad▁｜>") == 2);
    const int32_t first = tok.token_id("<｜place▁holder▁no▁0｜>");
    REQUIRE(first > 259);
    // Real ids (model-spec 9) minus the real first added id 128000.
    CHECK(tok.token_id("<think>") - first == 128798 - 128000);
    CHECK(tok.token_id("</think>") - first == 128799 - 128000);
    CHECK(tok.token_id("<｜User｜>") - first == 128803 - 128000);
    CHECK(tok.token_id("<｜Assistant｜>") - first == 128804 - 128000);
    CHECK(tok.token_id("｜DSML｜") - first == 128793 - 128000);
    CHECK(tok.token_id("<｜fim▁hole｜>") - first == 128800 - 128000);
    CHECK(tok.token_id("<|EOT|>") - first == 128805 - 128000);
    CHECK(tok.token_id("<｜tool▁sep｜>") - first == 128814 - 128000);
    CHECK(tok.n_ids() == first + 815);
    CHECK(tok.is_special(0));
    CHECK(tok.is_special(tok.token_id("｜DSML｜")));
    CHECK(tok.is_special(tok.token_id("<|EOT|>")));
    CHECK_FALSE(tok.is_special(tok.token_id("<think>")));
    CHECK_FALSE(tok.is_special(tok.token_id("<｜User｜>")));
  }
}

TEST_CASE("encode/decode round trip; merges shorten common text") {
  const Tokenizer tok = load(2048);
  const std::string texts[] = {
      "The agent reads the task and calls a tool.",
      "def f(x):\n    return x * 2\n",
      "naïve café, 日本語のテキスト, emoji 🙂 and numbers 1234567.",
      "  leading spaces\r\n\ttabs\n\n",
  };
  for (const std::string& t : texts) {
    INFO(t);
    const std::vector<int32_t> ids = tok.encode(t, false);
    CHECK(tok.decode(ids) == t);
    for (int32_t id : ids) CHECK((id >= 3 && id < tok.token_id("<｜place▁holder▁no▁0｜>")));
  }
  const std::string common = "the model reads the task and the tool result";
  CHECK(tok.encode(common, false).size() * 2 < common.size());

  const std::vector<int32_t> ids = tok.encode("<｜User｜>hi<｜Assistant｜><think>", true);
  REQUIRE(ids.size() >= 4);
  CHECK(ids.front() == tok.token_id("<｜User｜>"));
  CHECK(ids.back() == tok.token_id("<think>"));
  CHECK(tok.encode("<｜User｜>", false).size() > 1);  // plain text: not the special
}

TEST_CASE("deterministic, and too small a vocabulary is an error") {
  CHECK(*make_tokenizer_json(2048) == *make_tokenizer_json(2048));
  const auto small = make_tokenizer_json(1000);
  REQUIRE_FALSE(small.ok());
  CHECK(small.error().message.find("too small") != std::string::npos);
  const auto cfg = nlohmann::json::parse(make_tokenizer_config_json());
  CHECK(cfg["bos_token"]["content"] == "<｜begin▁of▁sentence｜>");
  CHECK(cfg["eos_token"]["content"] == "<｜end▁of▁sentence｜>");
  CHECK(cfg["add_bos_token"] == false);
}
