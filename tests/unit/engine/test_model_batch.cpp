// Batched decode (one pass over the weights for several sequences) equals one forward() per
// sequence bit for bit; bounded prefill key groups give the logits of unbounded ones.
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "engine/dist/comm.hpp"
#include "golden.hpp"

namespace dsa::test {
namespace {

std::vector<int32_t> make_tokens(int64_t n, int64_t vocab, int64_t salt) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 37 + salt * 101 + 11) % vocab);
  return t;
}

TEST_CASE("a 600-token prefill in small key groups gives the logits of one group, in bounded key memory") {
  for (const std::string fmt : {"bf16", "fp8"}) {
    TinyRun small(fmt, AttentionMode::sparse, /*n_pages=*/10), large(fmt, AttentionMode::sparse, 10);
    const ModelConfig& c = small.model->config();
    REQUIRE(c.index_topk == 16);
    const auto prompt = make_tokens(600, c.vocab_size, 1);
    const int64_t limit = c.index_topk;  // the smallest bound: one query's selection
    small.model->set_prefill_key_limit(limit);
    large.model->set_prefill_key_limit(int64_t(1) << 30);

    ForwardTrace small_trace, large_trace;
    REQUIRE(small.step(prompt, &small_trace).ok());
    REQUIRE(large.step(prompt, &large_trace).ok());
    CHECK(diff(small.logits, large.logits).max_abs == 0);
    CHECK(small_trace.keys_attended == large_trace.keys_attended);
    for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
      CHECK(diff(small_trace.hidden[layer], large_trace.hidden[layer]).max_abs == 0);
    }

    // Per expanded key: the latent, the rope part and kv_b_proj's k_nope | v for every head.
    const int64_t key_bytes =
        (c.kv_lora_rank + c.qk_rope_head_dim + c.num_attention_heads * (c.qk_nope_head_dim + c.v_head_dim)) * 4;
    MESSAGE(fmt << ": prefill key workspace " << small.model->prefill_key_bytes() << " B with a " << limit
                << "-key bound, " << large.model->prefill_key_bytes() << " B unbounded (600 tokens)");
    CHECK(int64_t(small.model->prefill_key_bytes()) <= limit * key_bytes);
    // Without the bound the chunk's union of selections is far larger: the bound is what holds it.
    CHECK(int64_t(large.model->prefill_key_bytes()) > 8 * limit * key_bytes);

    // In 50-token chunks (each scored by the indexer in one block, and far fewer keys to expand per
    // chunk): the same logits as one 600-token chunk.
    TinyRun chunked(fmt, AttentionMode::sparse, 10);
    for (size_t c = 0; c < prompt.size(); c += 50) {
      REQUIRE(chunked.step(std::span(prompt).subspan(c, std::min<size_t>(50, prompt.size() - c))).ok());
    }
    CHECK(diff(chunked.logits, large.logits).max_abs == 0);

    // A later chunk over the long context too.
    const auto more = make_tokens(40, c.vocab_size, 2);
    REQUIRE(small.step(more).ok());
    REQUIRE(large.step(more).ok());
    CHECK(diff(small.logits, large.logits).max_abs == 0);
  }
}

// B sequences of different lengths (below and above index_topk), prefilled, then decoded step by
// step with forward_decode_batch in one model and with one forward() per sequence in another.
void check_batch_equals_single(const std::string& fmt, const std::vector<int64_t>& prompt_lengths) {
  const int64_t B = static_cast<int64_t>(prompt_lengths.size());
  TinyRun batch(fmt, AttentionMode::sparse, /*n_pages=*/16), single(fmt, AttentionMode::sparse, 16);
  const ModelConfig& c = batch.model->config();
  const int64_t vocab = c.vocab_size;
  std::vector<Sequence> batch_seqs(B), single_seqs(B);
  std::vector<int32_t> next(B);
  for (int64_t b = 0; b < B; ++b) {
    const auto prompt = make_tokens(prompt_lengths[b], vocab, b + 3);
    REQUIRE(batch.model->forward(*batch.cache, batch_seqs[b], prompt, batch.logits.data()).ok());
    REQUIRE(single.model->forward(*single.cache, single_seqs[b], prompt, single.logits.data()).ok());
    next[b] = argmax(single.logits);
  }
  std::vector<Sequence*> seq_ptrs;
  for (auto& s : batch_seqs) seq_ptrs.push_back(&s);
  std::vector<float> batch_logits(static_cast<size_t>(B * vocab));
  for (int step = 0; step < 4; ++step) {
    ForwardTrace trace;
    REQUIRE(batch.model->forward_decode_batch(*batch.cache, seq_ptrs, next, batch_logits.data(), &trace).ok());
    int64_t keys = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t p = single_seqs[b].n_cached;
      ForwardTrace one;
      REQUIRE(single.model->forward(*single.cache, single_seqs[b], {&next[b], 1}, single.logits.data(), &one).ok());
      CHECK(batch_seqs[b].n_cached == single_seqs[b].n_cached);
      const std::span<const float> row(batch_logits.data() + b * vocab, static_cast<size_t>(vocab));
      CHECK(diff(row, single.logits).max_abs == 0);
      for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
        CHECK(trace.topk[layer].at(b) == one.topk[layer].at(0));
        const auto& h = trace.hidden[layer];
        CHECK(std::vector<float>(h.begin() + b * c.hidden_size, h.begin() + (b + 1) * c.hidden_size) ==
              one.hidden[layer]);
      }
      keys += one.keys_attended;
      CHECK(int64_t(one.topk[0].at(0).size()) == std::min(c.index_topk, p + 1));
      next[b] = argmax(single.logits);
    }
    CHECK(trace.keys_attended == keys);
  }
}

TEST_CASE("forward_decode_batch equals one forward per sequence, bit for bit (B = 1, 3, 5)") {
  for (const std::string fmt : {"bf16", "fp8"}) {
    CAPTURE(fmt);
    check_batch_equals_single(fmt, {40});
    check_batch_equals_single(fmt, {7, 40, 23});        // 7 + 4 steps stays below index_topk 16
    check_batch_equals_single(fmt, {70, 3, 129, 16, 31});
  }
}

// Prefills one sequence per prompt length, then decodes `steps` greedy tokens for all of them, batched
// or one forward() per sequence; returns every step's logits [step][b][vocab].
std::vector<float> decode_steps(Model& model, const std::vector<int64_t>& prompt_lengths, int steps, bool batched) {
  const int64_t B = static_cast<int64_t>(prompt_lengths.size()), vocab = model.config().vocab_size;
  KvCache cache(model.config(), cpu::LatentFormat::bf16, 16);
  std::vector<Sequence> seqs(B);
  std::vector<Sequence*> ptrs;
  std::vector<int32_t> next(B);
  std::vector<float> logits(static_cast<size_t>(B * vocab)), all;
  for (int64_t b = 0; b < B; ++b) {
    REQUIRE(model.forward(cache, seqs[b], make_tokens(prompt_lengths[b], vocab, b), logits.data()).ok());
    next[b] = argmax(std::span(logits).first(static_cast<size_t>(vocab)));
    ptrs.push_back(&seqs[b]);
  }
  for (int s = 0; s < steps; ++s) {
    if (batched) {
      REQUIRE(model.forward_decode_batch(cache, ptrs, next, logits.data()).ok());
    } else {
      for (int64_t b = 0; b < B; ++b) {
        REQUIRE(model.forward(cache, seqs[b], {&next[b], 1}, logits.data() + b * vocab).ok());
      }
    }
    all.insert(all.end(), logits.begin(), logits.end());
    for (int64_t b = 0; b < B; ++b) {
      next[b] = argmax(std::span(logits).subspan(static_cast<size_t>(b * vocab), static_cast<size_t>(vocab)));
    }
  }
  return all;
}

TEST_CASE("on two thread ranks, batched decode equals per-sequence decode") {
  const auto dir = fixtures_dir() / "engine" / "tiny-fp8";
  const std::vector<int64_t> lengths{9, 50, 20};
  auto comms = make_thread_comms(2);
  std::vector<std::unique_ptr<Model>> ranks(2);
  for (int r = 0; r < 2; ++r) {
    auto m = Model::load(dir, AttentionMode::sparse, comms[r].get());
    REQUIRE_MESSAGE(m.ok(), m.error().message);
    ranks[r] = std::move(m.value());
  }
  const auto run_ranks = [&](bool batched) {
    std::vector<std::vector<float>> got(2);
    std::thread t1([&] { got[1] = decode_steps(*ranks[1], lengths, 3, batched); });
    got[0] = decode_steps(*ranks[0], lengths, 3, batched);
    t1.join();
    CHECK(got[0] == got[1]);  // every rank agrees bit for bit
    return got[0];
  };
  const std::vector<float> per_sequence = run_ranks(false);
  const std::vector<float> batched = run_ranks(true);
  CHECK(batched == per_sequence);
}

TEST_CASE("forward_decode_batch rejects bad batches and advances no sequence") {
  TinyRun run("bf16", AttentionMode::sparse, /*n_pages=*/2);
  const int64_t vocab = run.model->config().vocab_size;
  Sequence a, b;
  const std::vector<int32_t> prompt{5, 6, 7};
  REQUIRE(run.model->forward(*run.cache, a, prompt, run.logits.data()).ok());
  REQUIRE(run.model->forward(*run.cache, b, prompt, run.logits.data()).ok());
  std::vector<float> logits(static_cast<size_t>(2 * vocab));

  std::vector<Sequence*> twice{&a, &a};
  const std::vector<int32_t> two{3, 4};
  auto r = run.model->forward_decode_batch(*run.cache, twice, two, logits.data());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("sequence 1 is sequence 0") != std::string::npos);

  std::vector<Sequence*> both{&a, &b};
  const std::vector<int32_t> one{3};
  r = run.model->forward_decode_batch(*run.cache, both, one, logits.data());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("1 tokens for 2 sequences") != std::string::npos);

  const std::vector<int32_t> bad{3, int32_t(vocab)};
  r = run.model->forward_decode_batch(*run.cache, both, bad, logits.data());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("token id 2048 at index 1") != std::string::npos);

  CHECK_FALSE(run.model->forward_decode_batch(*run.cache, {}, {}, logits.data()).ok());
  CHECK(a.n_cached == 3);
  CHECK(b.n_cached == 3);
  CHECK(run.model->forward_decode_batch(*run.cache, both, two, logits.data()).ok());
  CHECK(a.n_cached == 4);
  CHECK(b.n_cached == 4);
}

}  // namespace
}  // namespace dsa::test
