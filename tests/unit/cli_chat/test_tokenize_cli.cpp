// `dsagent tokenize` run as a user runs it, on a model directory written by `dsagent make-model`:
// the ids equal the library's encoding, special tokens only with --special, --json pieces, errors.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <string>

#include "engine/tokenizer/tokenizer.hpp"
#include "tests/test_support.hpp"

namespace dsa {
namespace {

test::CommandResult dsagent(const std::string& args) {
  return test::run_command(test::dsagent_binary().string() + " " + args);
}

std::string ids_line(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s + "\n";
}

TEST_CASE("tokenize: plain, --special and --json on a generated model") {
  test::TempDir dir("tokenize-cli");
  const std::string model = (dir / "m").string();
  REQUIRE(dsagent("make-model '" + model + "' --preset tiny --seed 3").exit_code == 0);
  auto tok = Tokenizer::load(dir / "m" / "tokenizer.json");
  REQUIRE_MESSAGE(tok.ok(), tok.error().message);

  const std::string text = "Hello <think>world</think> 12345";
  auto plain = dsagent("tokenize --model '" + model + "' '" + text + "'");
  CHECK(plain.exit_code == 0);
  CHECK(plain.output == ids_line(tok->encode(text, false)));

  auto special = dsagent("tokenize --model '" + model + "' --special '" + text + "'");
  CHECK(special.exit_code == 0);
  const auto special_ids = tok->encode(text, true);
  CHECK(special.output == ids_line(special_ids));
  const int32_t think = tok->token_id("<think>");
  REQUIRE(think >= 0);
  CHECK(std::find(special_ids.begin(), special_ids.end(), think) != special_ids.end());
  CHECK(plain.output.find(std::to_string(think)) == std::string::npos);  // user text cannot forge it

  auto js = dsagent("tokenize --model '" + model + "' --json 'abc abc'");
  CHECK(js.exit_code == 0);
  auto j = nlohmann::json::parse(js.output);
  CHECK(j["ids"].size() == j["pieces"].size());
  CHECK(j["ids"].get<std::vector<int32_t>>() == tok->encode("abc abc", false));

  auto missing = dsagent("tokenize --model '" + (dir / "nope").string() + "' x");
  CHECK(missing.exit_code != 0);
}

TEST_CASE("tokenize --bench-file: a directory is an error, not a file of no texts") {
  test::TempDir dir("tokenize-cli");
  const std::string model = (dir / "m").string();
  REQUIRE(dsagent("make-model '" + model + "' --preset tiny --seed 3").exit_code == 0);
  test::write_text(dir / "texts.jsonl", "{\"text\": \"hello\"}\n{\"text\": \"world\"}\n");
  const auto ok = dsagent("tokenize --model '" + model + "' --bench-file '" + (dir / "texts.jsonl").string() + "'");
  REQUIRE(ok.exit_code == 0);
  CHECK(nlohmann::json::parse(ok.output)["n_texts"] == 2);
  const auto r = dsagent("tokenize --model '" + model + "' --bench-file '" + dir.path().string() + "' 2>&1");
  CHECK(r.exit_code == 1);
  CHECK(r.output == "dsagent tokenize: " + dir.path().string() + ": is a directory, not a regular file\n");
}

}  // namespace
}  // namespace dsa
