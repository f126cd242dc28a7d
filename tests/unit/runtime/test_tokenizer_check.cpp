// A checkpoint's tokenizer.json against its config.json: the demo model's pair fits; a
// vocabulary past the model's, a chat-format token missing, or BOS / EOS ids that differ do not.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "engine/runtime/tokenizer_check.hpp"
#include "tests/test_support.hpp"

using namespace dsa;
namespace {

const std::filesystem::path kDemo = std::filesystem::path(DSA_SOURCE_DIR) / "examples" / "demo-model";

Tokenizer tokenizer_of(const nlohmann::json& j) {
  auto t = Tokenizer::from_json_text(j.dump(), "tokenizer.json");
  REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().message));
  return std::move(*t);
}

}  // namespace

TEST_CASE("check_tokenizer_fits: the demo model's tokenizer fits its config, a mismatched one does not") {
  auto cfg = load_config(kDemo / "config.json");
  REQUIRE(cfg.ok());
  const auto tok_json = nlohmann::json::parse(dsa::test::read_text(kDemo / "tokenizer.json"));
  const Tokenizer tok = tokenizer_of(tok_json);
  CHECK(check_tokenizer_fits(tok, *cfg).ok());

  SUBCASE("ids past the vocabulary") {
    ModelConfig small = *cfg;
    small.vocab_size = tok.n_ids() - 1;
    const auto r = check_tokenizer_fits(tok, small);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "tokenizer.json does not fit config.json: it has token ids up to " +
                                   std::to_string(tok.n_ids() - 1) + ", past the vocabulary of " +
                                   std::to_string(small.vocab_size));
  }
  SUBCASE("a chat-format token missing") {
    nlohmann::json j = tok_json;
    auto& added = j["added_tokens"];
    for (auto it = added.begin(); it != added.end(); ++it) {
      if ((*it)["content"] == "</think>") {
        added.erase(it);
        break;
      }
    }
    j["model"]["vocab"].erase("</think>");
    const auto r = check_tokenizer_fits(tokenizer_of(j), *cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "tokenizer.json does not fit config.json: it has no token </think> (the chat format's)");
  }
  SUBCASE("the config's EOS is another id") {
    ModelConfig other = *cfg;
    other.eos_token_id = cfg->eos_token_id + 1;
    const auto r = check_tokenizer_fits(tok, other);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("the config's eos_token_id is " + std::to_string(other.eos_token_id)) !=
          std::string::npos);
  }
}

TEST_CASE("load_checked_tokenizer: a checkpoint's pair is checked from its files alone, no weights read") {
  // Only config.json and tokenizer.json: a misfit is found before any shard would be opened.
  dsa::test::TempDir dir("dsa-tokcheck");
  dsa::test::write_text(dir / "tokenizer.json", dsa::test::read_text(kDemo / "tokenizer.json"));
  auto cfg = nlohmann::json::parse(dsa::test::read_text(kDemo / "config.json"));
  dsa::test::write_text(dir / "config.json", cfg.dump());
  CHECK(load_checked_tokenizer(dir.path()).ok());
  cfg["eos_token_id"] = cfg["eos_token_id"].get<int64_t>() + 1;
  dsa::test::write_text(dir / "config.json", cfg.dump());
  const auto r = load_checked_tokenizer(dir.path());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.starts_with(dir.path().string() + ": tokenizer.json does not fit config.json: "));
}
