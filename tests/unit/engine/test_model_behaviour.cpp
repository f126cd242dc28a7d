// Forward-pass behaviour beyond the golden numbers: chunked prefill, O(k) sparse decode, dense vs
// sparse attention, the FP8 latent cache, and the errors a caller can cause.
#include <doctest/doctest.h>

#include <numeric>

#include "golden.hpp"

namespace dsa::test {
namespace {

TEST_CASE("chunked prefill (0..23..41..60) equals one-shot prefill, then decodes the same ids") {
  for (const std::string fmt : {"fp8", "bf16"}) {
    const Golden g = Golden::load(fmt);
    const auto prompt = g.ids("prompt");
    const auto chunks = g.meta["chunks"].get<std::vector<size_t>>();
    REQUIRE(chunks == std::vector<size_t>{0, 23, 41, 60});

    TinyRun one(fmt), chunked(fmt);
    REQUIRE(one.step(prompt).ok());
    for (size_t c = 0; c + 1 < chunks.size(); ++c) {
      const std::span<const int32_t> part(prompt.data() + chunks[c], chunks[c + 1] - chunks[c]);
      REQUIRE(chunked.step(part).ok());
      CHECK(chunked.seq.n_cached == int64_t(chunks[c + 1]));
    }
    // Every row is computed by the same per-row kernels in both runs: bit-identical.
    CHECK(diff(chunked.logits, one.logits).max_abs == 0);
    CHECK(diff(chunked.logits, g.array("chunked_prefill_logits")).max_abs < 1e-3);

    std::vector<int32_t> ids{argmax(chunked.logits)};
    for (int i = 0; i < 20; ++i) {
      REQUIRE(chunked.step({&ids.back(), 1}).ok());
      ids.push_back(argmax(chunked.logits));
    }
    CHECK(ids == g.ids("chunked_decode_ids"));
  }
}

TEST_CASE("sparse decode at position p reads min(index_topk, p + 1) keys per layer, not p + 1") {
  TinyRun run("bf16");
  const ModelConfig& c = run.model->config();
  const Golden g = Golden::load("bf16");
  const auto prompt = g.ids("prompt");
  ForwardTrace trace;
  REQUIRE(run.step(prompt, &trace).ok());
  int64_t prefill_keys = 0;
  for (int64_t t = 0; t < int64_t(prompt.size()); ++t) prefill_keys += std::min(c.index_topk, t + 1);
  CHECK(trace.keys_attended == c.num_hidden_layers * prefill_keys);

  int32_t tok = argmax(run.logits);
  for (int i = 0; i < 3; ++i) {
    const int64_t p = run.seq.n_cached;
    ForwardTrace step;
    REQUIRE(run.step({&tok, 1}, &step).ok());
    CHECK(p + 1 > c.index_topk);  // the context really is larger than the selection
    CHECK(step.keys_attended == c.num_hidden_layers * std::min(c.index_topk, p + 1));
    for (const auto& layer : step.topk) CHECK(int64_t(layer.at(0).size()) == c.index_topk);
    tok = argmax(run.logits);
  }

  TinyRun dense("bf16", AttentionMode::dense);
  REQUIRE(dense.step(prompt).ok());
  const int64_t p = dense.seq.n_cached;
  ForwardTrace step;
  REQUIRE(dense.step({&tok, 1}, &step).ok());
  CHECK(step.keys_attended == c.num_hidden_layers * (p + 1));
}

TEST_CASE("dense attention equals sparse attention while the context is within index_topk") {
  for (const std::string fmt : {"fp8", "bf16"}) {
    const Golden g = Golden::load(fmt);
    const auto prompt = g.ids("prompt");
    TinyRun sparse(fmt), dense(fmt, AttentionMode::dense);
    const int64_t k = sparse.model->config().index_topk;
    const std::span<const int32_t> head(prompt.data(), size_t(k - 4));
    REQUIRE(sparse.step(head).ok());
    REQUIRE(dense.step(head).ok());
    CHECK(diff(sparse.logits, dense.logits).max_abs == 0);
    for (int i = 0; i < 4; ++i) {  // decode up to a context of exactly index_topk
      const int32_t tok = argmax(sparse.logits);
      REQUIRE(sparse.step({&tok, 1}).ok());
      REQUIRE(dense.step({&tok, 1}).ok());
      CHECK(diff(sparse.logits, dense.logits).max_abs == 0);
    }
    // Beyond index_topk the indexer drops keys, and the outputs part.
    const std::span<const int32_t> rest(prompt.data() + k, prompt.size() - size_t(k));
    REQUIRE(sparse.step(rest).ok());
    REQUIRE(dense.step(rest).ok());
    CHECK(diff(sparse.logits, dense.logits).max_abs > 1e-3);
  }
}

TEST_CASE("the FP8 latent cache gives the same logits as the bf16 one") {
  const Golden g = Golden::load("fp8");
  const auto prompt = g.ids("prompt");
  TinyRun a("fp8");
  TinyRun b("fp8");
  b.cache = std::make_unique<KvCache>(b.model->config(), cpu::LatentFormat::fp8, 4);
  REQUIRE(a.step(prompt).ok());
  REQUIRE(b.step(prompt).ok());
  CHECK(diff(a.logits, b.logits).max_abs == 0);
  const int32_t tok = argmax(a.logits);
  REQUIRE(a.step({&tok, 1}).ok());
  REQUIRE(b.step({&tok, 1}).ok());
  CHECK(diff(a.logits, b.logits).max_abs == 0);
}

TEST_CASE("bad inputs are errors and leave the sequence untouched") {
  TinyRun run("bf16", AttentionMode::sparse, /*n_pages=*/1);
  const int64_t vocab = run.model->config().vocab_size;

  const std::vector<int32_t> bad{5, int32_t(vocab), 7};
  auto r = run.step(bad);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("token id 2048 at index 1") != std::string::npos);
  const std::vector<int32_t> negative{-1};
  CHECK_FALSE(run.step(negative).ok());
  CHECK_FALSE(run.step(std::vector<int32_t>{}).ok());
  CHECK(run.seq.n_cached == 0);

  // One 64-token page: 64 tokens fit, the 65th does not.
  std::vector<int32_t> tokens(64);
  std::iota(tokens.begin(), tokens.end(), 2);
  REQUIRE(run.step(tokens).ok());
  const int32_t more = 3;
  r = run.step({&more, 1});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("pool exhausted") != std::string::npos);
  CHECK(run.seq.n_cached == 64);
  run.cache->release(run.seq);
  CHECK(run.step({&more, 1}).ok());
}

TEST_CASE("loading names the file and field that are wrong") {
  auto missing = Model::load(fixtures_dir() / "engine" / "no-such-model", AttentionMode::sparse);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message ==
        (fixtures_dir() / "engine" / "no-such-model").string() + ": directory does not exist");

  TempDir dir("dsa-engine");
  auto cfg = nlohmann::json::parse(read_text(fixtures_dir() / "engine" / "tiny-bf16" / "config.json"));
  cfg["index_head_dim"] = 96;  // valid for the config, but no Hadamard of that size
  write_text(dir / "config.json", cfg.dump());
  auto r = Model::load(dir.path(), AttentionMode::sparse);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("index_head_dim") != std::string::npos);
  CHECK(r.error().message.find("config.json") != std::string::npos);
}

}  // namespace
}  // namespace dsa::test
