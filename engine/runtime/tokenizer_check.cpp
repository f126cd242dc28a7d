// Checks a tokenizer against its model's config (see tokenizer_check.hpp).
#include "engine/runtime/tokenizer_check.hpp"

#include <string>
#include <string_view>

#include "engine/chat/dsv32_format.hpp"

namespace dsa {

Result<void> check_tokenizer_fits(const Tokenizer& tokenizer, const ModelConfig& config) {
  const std::string where = "tokenizer.json does not fit config.json: ";
  if (tokenizer.n_ids() > config.vocab_size)
    return make_error(where + "it has token ids up to " + std::to_string(tokenizer.n_ids() - 1) +
                      ", past the vocabulary of " + std::to_string(config.vocab_size));
  for (std::string_view special :
       {dsv32::bos, dsv32::eos, dsv32::user_start, dsv32::assistant_start, dsv32::think_start, dsv32::think_end}) {
    if (tokenizer.token_id(special) < 0)
      return make_error(where + "it has no token " + std::string(special) + " (the chat format's)");
  }
  const auto same = [&](std::string_view token, int64_t id, const char* field) -> Result<void> {
    if (tokenizer.token_id(token) == id) return {};
    return make_error(where + "its " + std::string(token) + " is id " + std::to_string(tokenizer.token_id(token)) +
                      ", the config's " + field + " is " + std::to_string(id));
  };
  if (auto r = same(dsv32::bos, config.bos_token_id, "bos_token_id"); !r) return r;
  return same(dsv32::eos, config.eos_token_id, "eos_token_id");
}

Result<Tokenizer> load_checked_tokenizer(const std::filesystem::path& dir) {
  DSA_TRY(tokenizer, Tokenizer::load(dir / "tokenizer.json"));
  DSA_TRY(config, load_config(dir / "config.json"));
  if (auto fits = check_tokenizer_fits(tokenizer, config); !fits)
    return make_error(dir.string() + ": " + fits.error().message);
  return tokenizer;
}

}  // namespace dsa
