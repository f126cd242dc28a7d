// Generator on the tiny FP8 checkpoint: greedy output equals the reference's golden ids (one-shot
// and chunked prefill), the prefix cache serves exactly the common prefix and changes nothing in
// the output, and the stopping rules (EOS, max_tokens, callback, full context) hold.
#include <doctest/doctest.h>

#include <algorithm>

#include "engine/runtime/generator.hpp"
#include "tests/unit/runtime/runtime_test_support.hpp"

using namespace dsa;
using dsa::test::golden_fp8;
using dsa::test::load_tiny;

namespace {

GenerateParams greedy(int64_t max_tokens, int64_t chunk = 512) {
  GenerateParams p;
  p.max_tokens = max_tokens;
  p.prefill_chunk = chunk;
  return p;
}

std::span<const int32_t> head(const std::vector<int32_t>& v, size_t n) { return std::span(v).first(n); }

}  // namespace

TEST_CASE("greedy generation reproduces the golden ids, one-shot and chunked") {
  const auto golden = golden_fp8();
  const int64_t n = int64_t(golden.decode_ids.size());
  for (int64_t chunk : {512, 23, 7}) {
    CAPTURE(chunk);
    Generator gen(load_tiny(), cpu::LatentFormat::fp8, 256);
    auto g = gen.generate(golden.prompt, greedy(n, chunk), {});
    REQUIRE(g.ok());
    CHECK(g->tokens == golden.decode_ids);
    CHECK(g->prompt_tokens == int64_t(golden.prompt.size()));
    CHECK(g->cached_tokens == 0);
    CHECK_FALSE(g->hit_eos);
  }
  // The bf16 latent records hold the same values as the FP8 ones.
  Generator gen(load_tiny(), cpu::LatentFormat::bf16, 256);
  auto g = gen.generate(golden.prompt, greedy(n), {});
  REQUIRE(g.ok());
  CHECK(g->tokens == golden.decode_ids);
}

TEST_CASE("the prefix cache reuses exactly the common prefix and does not change the output") {
  const auto golden = golden_fp8();
  const int64_t n = int64_t(golden.decode_ids.size());
  Generator gen(load_tiny(), cpu::LatentFormat::fp8, 256);

  auto first = gen.generate(head(golden.prompt, 30), greedy(4), {});
  REQUIRE(first.ok());
  CHECK(first->cached_tokens == 0);

  // Extends the first prompt (not its output): the 30 prompt tokens are reused.
  auto second = gen.generate(golden.prompt, greedy(n), {});
  REQUIRE(second.ok());
  CHECK(second->cached_tokens == 30);
  CHECK(second->tokens == golden.decode_ids);

  // The same prompt again: all but the last two tokens (prefilled again for the logits).
  auto again = gen.generate(golden.prompt, greedy(n), {});
  REQUIRE(again.ok());
  CHECK(again->cached_tokens == int64_t(golden.prompt.size()) - 2);
  CHECK(again->tokens == golden.decode_ids);

  // The prompt plus the generated text and more (a follow-up turn): everything generated but the
  // last id was forwarded, so prompt + 20 ids are served from the cache.
  std::vector<int32_t> follow = golden.prompt;
  follow.insert(follow.end(), golden.decode_ids.begin(), golden.decode_ids.end());
  for (int32_t id : {5, 6, 7}) follow.push_back(id);
  auto third = gen.generate(follow, greedy(2), {});
  REQUIRE(third.ok());
  CHECK(third->cached_tokens == int64_t(golden.prompt.size() + golden.decode_ids.size()) - 1);

  // Diverging at position 40: the cache is cut back there, and the result equals a cold run.
  std::vector<int32_t> other(golden.prompt.begin(), golden.prompt.begin() + 40);
  for (int32_t id : {7, 8, 9, 10}) other.push_back(id);
  auto warm = gen.generate(other, greedy(8), {});
  REQUIRE(warm.ok());
  CHECK(warm->cached_tokens == 40);
  Generator cold_gen(load_tiny(), cpu::LatentFormat::fp8, 256);
  auto cold = cold_gen.generate(other, greedy(8), {});
  REQUIRE(cold.ok());
  CHECK(warm->tokens == cold->tokens);
}

TEST_CASE("seeded sampling reproduces across runs") {
  const auto golden = golden_fp8();
  GenerateParams p;
  p.max_tokens = 12;
  p.sampling = {.temperature = 1.0, .top_p = 0.9, .seed = 1234};
  Generator a(load_tiny(), cpu::LatentFormat::fp8, 128), b(load_tiny(), cpu::LatentFormat::fp8, 128);
  auto ra = a.generate(golden.prompt, p, {});
  auto rb = b.generate(golden.prompt, p, {});
  REQUIRE(ra.ok());
  REQUIRE(rb.ok());
  CHECK(ra->tokens == rb->tokens);
  CHECK(ra->tokens.size() == 12);
}

TEST_CASE("stopping: callback, max_tokens, full context, masked ids, errors") {
  const auto golden = golden_fp8();
  Generator gen(load_tiny(), cpu::LatentFormat::fp8, 64);

  int calls = 0;
  auto stopped = gen.generate(golden.prompt, greedy(20), [&](int32_t id) {
    CHECK(id == golden.decode_ids[size_t(calls)]);
    return ++calls == 3;
  });
  REQUIRE(stopped.ok());
  CHECK(stopped->tokens.size() == 3);

  // 60 prompt tokens in a 64-token context: the first id comes from the prompt's logits and four
  // more steps fill the cache.
  auto full = gen.generate(golden.prompt, greedy(20), {});
  REQUIRE(full.ok());
  CHECK(full->tokens == std::vector<int32_t>(golden.decode_ids.begin(), golden.decode_ids.begin() + 5));

  // A masked id is never produced, even where greedy would pick it.
  const std::vector<int32_t> masked = {golden.decode_ids[0]};
  GenerateParams p = greedy(1);
  p.masked_ids = masked;
  auto m = gen.generate(golden.prompt, p, {});
  REQUIRE(m.ok());
  REQUIRE(m->tokens.size() == 1);
  CHECK(m->tokens[0] != golden.decode_ids[0]);

  std::vector<int32_t> many(2000);
  for (int32_t& id : many) id = (&id - many.data()) % 100 + 3;
  p.sampling = {.temperature = 1.0, .seed = 5};
  p.max_tokens = 30;
  std::vector<int32_t> low_only;
  for (int32_t id = 100; id < 2048; ++id) low_only.push_back(id);
  p.masked_ids = low_only;
  Generator sampled(load_tiny(), cpu::LatentFormat::fp8, 128);
  auto s = sampled.generate(head(golden.prompt, 10), p, {});
  REQUIRE(s.ok());
  CHECK(s->tokens.size() == 30);
  CHECK(std::all_of(s->tokens.begin(), s->tokens.end(), [](int32_t id) { return id < 100; }));

  auto too_long = gen.generate(many, greedy(1), {});
  CHECK_FALSE(too_long.ok());
  CHECK(gen.generate({}, greedy(1), {}).ok() == false);
  const std::vector<int32_t> bad = {3, 4, 99999};
  auto out_of_vocab = gen.generate(bad, greedy(1), {});
  REQUIRE_FALSE(out_of_vocab.ok());
  CHECK(out_of_vocab.error().message.find("99999") != std::string::npos);
  // After an error the generator still works and still reuses what is valid.
  auto after = gen.generate(head(golden.prompt, 60), greedy(2), {});
  REQUIRE(after.ok());
  CHECK(after->tokens == std::vector<int32_t>(golden.decode_ids.begin(), golden.decode_ids.begin() + 2));
}
