// BackendModel (the forward pass as backend ops, what runs on a GPU) on the CPU backend, checked
// in a chain: its every query attends in the absorbed form, which is Model's decode path, and
// Model's decode path matches the NumPy reference's decode (test_model_golden.cpp). So here:
//   - a prefill chunk gives, bit for bit, what Model gives fed the chunk one token at a time, and
//     decode steps give Model's decode steps bit for bit (logits, selections, hidden states);
//   - against the reference's prefill (which expands the selected keys, the MHA form) with the
//     reference's selections pinned, within the absorbed form's other bf16 roundings. Measured on
//     the BF16 tiny model: hidden rel 0.005 / 0.014 / 0.025 per layer, logits 0.052; the bounds
//     allow under twice that. On the FP8 tiny model only layer 0 compares (rel 0.027): past it the
//     activations' FP8 quantisation (3 mantissa bits) turns one-ulp bf16 differences into 1/8 steps
//     of a code, and the two forms part by tens of percent on these random weights (Model's decode
//     path measures the same there).
#include <doctest/doctest.h>

#include <cstring>
#include <set>
#include <thread>
#include <tuple>

#include "engine/backend/backend_cpu.hpp"
#include "engine/dist/comm.hpp"
#include "engine/model/backend_model.hpp"
#include "engine/model/make_model.hpp"
#include "engine/model/open_model.hpp"
#include "golden.hpp"

namespace dsa::test {
namespace {

constexpr double kHiddenRel = 0.04;
constexpr double kLogitAbs = 0.1;

std::filesystem::path tiny_dir(const std::string& fmt) { return fixtures_dir() / "engine" / ("tiny-" + fmt); }

std::unique_ptr<BackendModel> load_backend_model(const std::string& fmt, AttentionMode mode = AttentionMode::sparse,
                                                 Comm* comm = nullptr) {
  auto m = BackendModel::load(tiny_dir(fmt), mode, std::make_unique<CpuBackend>(), {}, comm);
  if (!m) throw std::runtime_error(m.error().message);
  return std::move(m.value());
}

// A model with its own cache (in the model's memory) and sequence.
struct Run {
  std::unique_ptr<ForwardPass> model;
  std::unique_ptr<KvCache> cache;
  Sequence seq;
  std::vector<float> logits;

  explicit Run(std::unique_ptr<ForwardPass> m, int64_t n_pages = 4) : model(std::move(m)) {
    cache = std::make_unique<KvCache>(model->config(), cpu::LatentFormat::bf16, n_pages, model->cache_memory());
    logits.resize(static_cast<size_t>(model->config().vocab_size));
  }
  Result<void> step(std::span<const int32_t> tokens, ForwardTrace* trace = nullptr) {
    return model->forward(*cache, seq, tokens, logits.data(), trace);
  }
};

std::unique_ptr<ForwardPass> cpu_model(const std::string& fmt, AttentionMode mode = AttentionMode::sparse) {
  auto m = Model::load(tiny_dir(fmt), mode);
  if (!m) throw std::runtime_error(m.error().message);
  return std::move(m.value());
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_CASE("a prefill chunk on the backend model is Model's decode path over the chunk, bit for bit") {
  for (const std::string fmt : {"fp8", "bf16"}) {
    for (const AttentionMode mode : {AttentionMode::sparse, AttentionMode::dense}) {
      const auto prompt = Golden::load(fmt).ids("prompt");
      Run run(load_backend_model(fmt, mode)), ref(cpu_model(fmt, mode));
      ForwardTrace trace;
      REQUIRE(run.step(prompt, &trace).ok());
      const int64_t D = run.model->config().hidden_size;
      int64_t keys = 0;
      for (size_t i = 0; i < prompt.size(); ++i) {
        ForwardTrace one;
        REQUIRE(ref.step({&prompt[i], 1}, &one).ok());
        keys += one.keys_attended;
        for (size_t l = 0; l < one.hidden.size(); ++l) {
          REQUIRE_MESSAGE(same_bits(std::span(trace.hidden[l]).subspan(i * size_t(D), size_t(D)), one.hidden[l]),
                          fmt << " token " << i << " layer " << l);
          REQUIRE(trace.topk[l][i] == one.topk[l][0]);
        }
      }
      CHECK(same_bits(run.logits, ref.logits));
      CHECK(trace.keys_attended == keys);
      // Sparse: each query reads at most index_topk keys per layer, not its whole context.
      const ModelConfig& c = run.model->config();
      if (mode == AttentionMode::sparse) {
        CHECK(keys <= c.num_hidden_layers * c.index_topk * static_cast<int64_t>(prompt.size()));
      }
    }
  }
}

TEST_CASE("with the reference's selections pinned, the backend model's prefill matches the reference") {
  for (const std::string fmt : {"bf16", "fp8"}) {
    const Golden g = Golden::load(fmt);
    const auto prompt = g.ids("prompt");
    const TopkSets ref = g.prefill_topk();
    Run run(load_backend_model(fmt));
    ForwardTrace trace;
    trace.forced_topk = &ref;
    REQUIRE(run.step(prompt, &trace).ok());
    // Layer 0's own selections come before any attention output differs: the reference's exactly.
    CHECK(trace.topk[0] == ref[0]);
    const int64_t layers = fmt == "bf16" ? run.model->config().num_hidden_layers : 1;
    for (int64_t layer = 0; layer < layers; ++layer) {
      const Diff d = diff(trace.hidden[layer], g.array("hidden." + std::to_string(layer)));
      MESSAGE(fmt << " hidden." << layer << " max abs " << d.max_abs << " rel " << d.rel());
      CHECK(d.rel() < kHiddenRel);
    }
    if (fmt == "bf16") {
      const Diff dl = diff(run.logits, g.array("prefill_logits"));
      MESSAGE(fmt << " prefill logits max abs " << dl.max_abs);
      CHECK(dl.max_abs < kLogitAbs);
      CHECK(argmax(run.logits) == g.ids("decode_ids")[0]);
    }
  }
}

TEST_CASE("token by token, the CPU backend gives Model's logits and selections bit for bit") {
  for (const std::string fmt : {"fp8", "bf16"}) {
    for (const AttentionMode mode : {AttentionMode::sparse, AttentionMode::dense}) {
      Run ref(cpu_model(fmt, mode)), run(load_backend_model(fmt, mode));
      const int64_t vocab = run.model->config().vocab_size;
      // 3 x index_topk and more, so that the selections are sparse in the later steps.
      for (int32_t i = 0; i < 60; ++i) {
        const int32_t tok = static_cast<int32_t>((i * 53 + 7) % vocab);
        ForwardTrace a, b;
        REQUIRE(ref.step({&tok, 1}, &a).ok());
        REQUIRE(run.step({&tok, 1}, &b).ok());
        REQUIRE_MESSAGE(same_bits(run.logits, ref.logits), fmt << " step " << i);
        REQUIRE(b.topk == a.topk);
        CHECK(b.keys_attended == a.keys_attended);
        for (size_t l = 0; l < a.hidden.size(); ++l) CHECK(same_bits(b.hidden[l], a.hidden[l]));
      }
      CHECK(run.seq.n_cached == 60);
    }
  }
}

TEST_CASE("batched decode on the backend model gives separate decodes bit for bit") {
  for (const std::string fmt : {"fp8", "bf16"}) {
    auto model = load_backend_model(fmt);
    const ModelConfig& c = model->config();
    KvCache cache(c, cpu::LatentFormat::fp8, 12, model->cache_memory());
    KvCache alone(c, cpu::LatentFormat::fp8, 12, model->cache_memory());
    std::vector<Sequence> seqs(3), solo(3);
    std::vector<float> logits(static_cast<size_t>(3 * c.vocab_size)), one(static_cast<size_t>(c.vocab_size));
    // Different lengths: 70, 20 and 1 tokens of context.
    for (int b = 0; b < 3; ++b) {
      const int64_t n = b == 0 ? 70 : b == 1 ? 20 : 1;
      std::vector<int32_t> prompt(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) prompt[i] = static_cast<int32_t>((i * 31 + b * 17 + 3) % c.vocab_size);
      REQUIRE(model->forward(cache, seqs[b], prompt, one.data()).ok());
      REQUIRE(model->forward(alone, solo[b], prompt, one.data()).ok());
    }
    std::vector<Sequence*> rows{&seqs[0], &seqs[1], &seqs[2]};
    for (int step = 0; step < 3; ++step) {
      const std::vector<int32_t> toks{static_cast<int32_t>(5 + step), static_cast<int32_t>(900 + step),
                                      static_cast<int32_t>(77 * step)};
      REQUIRE(model->forward_decode_batch(cache, rows, toks, logits.data()).ok());
      for (int b = 0; b < 3; ++b) {
        REQUIRE(model->forward(alone, solo[b], {&toks[b], 1}, one.data()).ok());
        CHECK_MESSAGE(same_bits(std::span(logits).subspan(size_t(b) * one.size(), one.size()), one),
                      fmt << " step " << step << " sequence " << b);
        CHECK(seqs[b].n_cached == solo[b].n_cached);
      }
    }
    // A sequence given twice: an error, and nothing advanced.
    std::vector<Sequence*> twice{&seqs[0], &seqs[0]};
    const std::vector<int32_t> two{1, 2};
    const int64_t before = seqs[0].n_cached;
    const auto r = model->forward_decode_batch(cache, twice, two, logits.data());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("again") != std::string::npos);
    CHECK(seqs[0].n_cached == before);
  }
}

TEST_CASE("bad input to the backend model is a one-line error and changes nothing") {
  Run run(load_backend_model("fp8"));
  const std::vector<int32_t> prompt{1, 2, 3};
  REQUIRE(run.step(prompt).ok());
  const std::vector<int32_t> bad{4, 5000};
  auto r = run.step(bad);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("outside the vocabulary") != std::string::npos);
  CHECK(run.seq.n_cached == 3);
  r = run.step({});
  REQUIRE_FALSE(r.ok());
  // A pool too small for the request.
  Run small(load_backend_model("fp8"), /*n_pages=*/1);
  std::vector<int32_t> long_prompt(65, 7);
  r = small.step(long_prompt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("pool exhausted") != std::string::npos);
  CHECK(small.seq.n_cached == 0);
}

TEST_CASE("two thread ranks on the CPU backend give one rank's logits") {
  for (const std::string fmt : {"fp8", "bf16"}) {
    const auto prompt = Golden::load(fmt).ids("prompt");
    const auto steps = [&](ForwardPass& model) {
      KvCache cache(model.config(), cpu::LatentFormat::bf16, 4, model.cache_memory());
      Sequence seq;
      std::vector<float> logits(static_cast<size_t>(model.config().vocab_size)), all;
      REQUIRE(model.forward(cache, seq, prompt, logits.data()).ok());
      all = logits;
      for (int i = 0; i < 4; ++i) {
        const int32_t tok = argmax(logits);
        REQUIRE(model.forward(cache, seq, {&tok, 1}, logits.data()).ok());
        all.insert(all.end(), logits.begin(), logits.end());
      }
      return all;
    };
    auto single = load_backend_model(fmt);
    const std::vector<float> expect = steps(*single);
    auto comms = make_thread_comms(2);
    std::vector<std::unique_ptr<BackendModel>> ranks(2);
    for (int r = 0; r < 2; ++r) {
      ranks[r] = load_backend_model(fmt, AttentionMode::sparse, comms[r].get());
      ranks[r]->set_check_topk(true);  // a false alarm would fail the run
    }
    std::vector<std::vector<float>> got(2);
    std::thread t1([&] { got[1] = steps(*ranks[1]); });
    got[0] = steps(*ranks[0]);
    t1.join();
    CHECK(got[0] == got[1]);
    const Diff d = diff(got[0], expect);
    MESSAGE(fmt << " backend model, 2 ranks vs 1: logits max abs " << d.max_abs);
    CHECK(d.max_abs < 1e-3);
  }
}

TEST_CASE("backend model ranks whose selections differ fail the forward on every rank, naming the layer") {
  auto comms = make_thread_comms(2);
  std::vector<std::string> errors(2);
  std::vector<int64_t> cached(2, -1);
  const auto run_rank = [&](int r) {
    auto model = load_backend_model("bf16", AttentionMode::sparse, comms[size_t(r)].get());
    model->set_check_topk(true);
    const ModelConfig& cfg = model->config();
    KvCache cache(cfg, cpu::LatentFormat::fp8, 2, model->cache_memory());
    Sequence seq;
    const auto prompt = Golden::load("bf16").ids("prompt");
    std::vector<float> logits(size_t(cfg.vocab_size));
    // Rank 1 attends to key 0 alone in every layer: its selections differ from rank 0's.
    TopkSets forced(size_t(cfg.num_hidden_layers), std::vector<std::vector<int32_t>>(prompt.size(), {0}));
    ForwardTrace trace;
    if (r == 1) trace.forced_topk = &forced;
    auto out = model->forward(cache, seq, prompt, logits.data(), &trace);
    errors[size_t(r)] = out.ok() ? "" : out.error().message;
    cached[size_t(r)] = seq.n_cached;
  };
  std::thread t1([&] { run_rank(1); });
  run_rank(0);
  t1.join();
  for (int r = 0; r < 2; ++r) {
    CHECK(errors[size_t(r)] ==
          "forward: the ranks selected different top-k keys (first at layer 0); their indexer inputs differ");
    CHECK(cached[size_t(r)] == 0);
  }
}

TEST_CASE("a rank short of workspace memory fails the call on every rank, and the ranks go on in step") {
  // After a 2-token chunk and a decode step (recorded), rank `short_rank` may hold no more than it
  // holds, so the next, longer chunk cannot grow its workspace. Before the ranks agreed on the
  // workspace, the other rank waited in the first collective for ever. Then a decode step that
  // fits; then the bound is lifted, the chunk runs, and two more decode steps. The calls that
  // succeed are the calls of a run without the bound, and give its logits bit for bit.
  const auto prompt = Golden::load("fp8").ids("prompt");
  const std::span<const int32_t> head(prompt.data(), 2), rest(prompt.data() + 2, prompt.size() - 2);
  struct Outcome {
    std::string error;
    int64_t cached_after_error = -1;
    std::vector<float> logits;  // of the calls after the failing one
    BackendModel::RecordingCounts recordings;
  };
  const auto run = [&](int short_rank) {
    auto comms = make_thread_comms(2);
    std::vector<Outcome> out(2);
    const auto run_rank = [&](int r) {
      auto backend = std::make_unique<CpuBackend>();
      CpuBackend* memory = backend.get();
      auto loaded =
          BackendModel::load(tiny_dir("fp8"), AttentionMode::sparse, std::move(backend), {}, comms[size_t(r)].get());
      REQUIRE(loaded);
      BackendModel& model = *loaded.value();
      KvCache cache(model.config(), cpu::LatentFormat::bf16, 4, model.cache_memory());
      Sequence seq;
      std::vector<float> logits(size_t(model.config().vocab_size));
      std::vector<float>& all = out[size_t(r)].logits;
      const auto decode = [&](int32_t tok) {
        REQUIRE(model.forward(cache, seq, {&tok, 1}, logits.data()).ok());
        all.insert(all.end(), logits.begin(), logits.end());
      };
      REQUIRE(model.forward(cache, seq, head, logits.data()).ok());
      decode(5);
      if (short_rank >= 0) {
        if (r == short_rank) memory->set_capacity(memory->held());
        auto failed = model.forward(cache, seq, rest, logits.data());
        REQUIRE(!failed);
        out[size_t(r)].error = failed.error().message;
        out[size_t(r)].cached_after_error = seq.n_cached;
      }
      // Its recording was dropped on one rank (which reallocated before the other failed): the
      // ranks must record it anew alike, not one replay it while the other records.
      decode(6);
      memory->set_capacity(SIZE_MAX);
      REQUIRE(model.forward(cache, seq, rest, logits.data()).ok());
      all.insert(all.end(), logits.begin(), logits.end());
      decode(argmax(logits));
      decode(argmax(logits));
      out[size_t(r)].recordings = model.recording_counts();
    };
    std::thread t1([&] { run_rank(1); });
    run_rank(0);
    t1.join();
    return out;
  };
  const std::vector<Outcome> unbounded = run(-1);
  for (int short_rank : {0, 1}) {
    CAPTURE(short_rank);
    const std::vector<Outcome> got = run(short_rank);
    for (int r = 0; r < 2; ++r) {
      CHECK(got[size_t(r)].error == "forward: " + std::to_string(rest.size()) +
                                        " rows do not fit into the cpu memory left for the workspace on rank " +
                                        std::to_string(short_rank) +
                                        " (try a smaller prefill chunk or fewer sequences)");
      CHECK(got[size_t(r)].cached_after_error == 3);
      CHECK(same_bits(got[size_t(r)].logits, unbounded[size_t(r)].logits));
    }
    // Each rank's recordings hold its collectives, which pair with the other's: the same steps are
    // recorded and replayed on both.
    CHECK(got[0].recordings.recorded == got[1].recordings.recorded);
    CHECK(got[0].recordings.replayed == got[1].recordings.replayed);
    CHECK(got[0].recordings.recorded >= 2);
  }
}

TEST_CASE("a replayed decode step after a failed top-k check is not failed by the old check") {
  // Step 1 is recorded; step 2 is checked and the ranks' selections differ (rank 1's forced), so it
  // fails; step 2 again, unchecked, replays step 1's recording and must succeed.
  auto comms = make_thread_comms(2);
  std::vector<std::string> errors(2), retried(2);
  std::vector<int64_t> replayed(2);
  const auto run_rank = [&](int r) {
    auto model = load_backend_model("fp8", AttentionMode::sparse, comms[size_t(r)].get());
    const ModelConfig& cfg = model->config();
    KvCache cache(cfg, cpu::LatentFormat::bf16, 2, model->cache_memory());
    Sequence seq;
    const auto prompt = Golden::load("fp8").ids("prompt");
    std::vector<float> logits(size_t(cfg.vocab_size));
    REQUIRE(model->forward(cache, seq, prompt, logits.data()).ok());
    const int32_t tok = 7;
    REQUIRE(model->forward(cache, seq, {&tok, 1}, logits.data()).ok());
    model->set_check_topk(true);
    TopkSets forced(size_t(cfg.num_hidden_layers), std::vector<std::vector<int32_t>>(1, {0}));
    ForwardTrace trace;
    if (r == 1) trace.forced_topk = &forced;
    auto out = model->forward(cache, seq, {&tok, 1}, logits.data(), &trace);
    errors[size_t(r)] = out.ok() ? "" : out.error().message;
    model->set_check_topk(false);
    auto again = model->forward(cache, seq, {&tok, 1}, logits.data());
    retried[size_t(r)] = again.ok() ? "" : again.error().message;
    replayed[size_t(r)] = model->recording_counts().replayed;
  };
  std::thread t1([&] { run_rank(1); });
  run_rank(0);
  t1.join();
  for (int r = 0; r < 2; ++r) {
    CHECK(errors[size_t(r)].find("selected different top-k keys") != std::string::npos);
    CHECK(retried[size_t(r)] == "");
    CHECK(replayed[size_t(r)] == 2);
  }
}

TEST_CASE("--device cuda without a usable GPU is a one-line error") {
  auto m = open_model(tiny_dir("fp8"), OpenOptions{.device = Device::cuda});
  if (m.ok()) {
    MESSAGE("a CUDA GPU is present: opened on it");
    return;
  }
  CHECK(m.error().message.rfind("--device cuda: ", 0) == 0);
  CHECK(m.error().message.find('\n') == std::string::npos);
  CHECK_FALSE(parse_device("tpu").ok());
  CHECK(parse_device("cuda").value() == Device::cuda);
}

// Decode steps replayed from recordings (the CPU's stand-in for CUDA graphs: each op kept with the
// arguments it was recorded with) give the steps run op by op, bit for bit, while the contexts grow
// past page and key-span boundaries, the batch changes shape, a sequence is replaced, and a second
// pool is used. A recorded argument that should have followed the step (a page table's stride, a
// grid's key count, a score row's stride) gives other logits, or breaks the CPU backend's contract
// checks of max_keys / max_sel.
TEST_CASE("decode steps replayed from recordings give the steps run op by op, bit for bit") {
  auto recorded = load_backend_model("fp8");
  auto direct = load_backend_model("fp8");
  direct->set_recorded_decode(false);
  const ModelConfig& c = recorded->config();
  struct Side {
    BackendModel* model;
    std::vector<std::unique_ptr<KvCache>> pools;
    std::vector<Sequence> seqs;
  };
  Side sides[2] = {{recorded.get(), {}, std::vector<Sequence>(8)}, {direct.get(), {}, std::vector<Sequence>(8)}};
  for (Side& side : sides) {
    for (int p = 0; p < 3; ++p) {
      side.pools.push_back(std::make_unique<KvCache>(c, cpu::LatentFormat::fp8, 40, side.model->cache_memory()));
    }
  }
  const auto prompt = [&](int64_t n, int salt) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 37 + salt * 11 + 5) % c.vocab_size);
    return ids;
  };
  std::vector<float> a(static_cast<size_t>(4 * c.vocab_size)), b(a.size());
  // The workspace grown first (a 4-row step over 1024 keys, a 100-token prefill in pool 2), so
  // that it does not move below: each recording made then is the first of its key.
  for (Side& side : sides) {
    std::vector<Sequence*> rows;
    for (int s = 4; s < 8; ++s) {
      REQUIRE(side.model->forward(*side.pools[2], side.seqs[s], prompt(s == 4 ? 100 : 520, s), a.data()).ok());
      rows.push_back(&side.seqs[s]);
    }
    const std::vector<int32_t> toks{1, 2, 3, 4};
    REQUIRE(side.model->forward_decode_batch(*side.pools[2], rows, toks, a.data()).ok());
  }
  // Sequences 0-2 in pool 0 (contexts 230, 30 and 2), sequence 3 in pool 1 (context 60).
  const int64_t lengths[4] = {230, 30, 2, 60};
  const int pool_of[4] = {0, 0, 0, 1};
  for (Side& side : sides) {
    for (int s = 0; s < 4; ++s) {
      REQUIRE(side.model->forward(*side.pools[pool_of[s]], side.seqs[s], prompt(lengths[s], s), a.data()).ok());
    }
  }
  std::set<std::tuple<int, size_t, int64_t>> keys;  // (pool, rows, key span) of the steps
  int64_t steps = 0;
  const auto step = [&](int pool, const std::vector<int>& rows, int salt) {
    std::vector<int32_t> toks;
    int64_t end = 0;
    for (int s : rows) {
      toks.push_back(static_cast<int32_t>((s * 101 + salt * 7 + 3) % c.vocab_size));
      end = std::max(end, sides[0].seqs[s].n_cached + 1);
    }
    int64_t span = 256;
    while (span < end) span *= 2;
    keys.emplace(pool, rows.size(), span);
    ++steps;
    std::vector<float>* out[2] = {&a, &b};
    for (int i = 0; i < 2; ++i) {
      Side& side = sides[i];
      std::vector<Sequence*> seqs;
      for (int s : rows) seqs.push_back(&side.seqs[s]);
      if (rows.size() == 1) {
        REQUIRE(side.model->forward(*side.pools[pool], *seqs[0], toks, out[i]->data()).ok());
      } else {
        REQUIRE(side.model->forward_decode_batch(*side.pools[pool], seqs, toks, out[i]->data()).ok());
      }
    }
    const size_t n = rows.size() * static_cast<size_t>(c.vocab_size);
    REQUIRE_MESSAGE(std::memcmp(a.data(), b.data(), n * sizeof(float)) == 0, "step " << steps << " salt " << salt);
  };
  for (int t = 0; t < 70; ++t) {
    // Sequence 0 passes 256 keys (a new key span) and sequences 0-2 pass page boundaries.
    if (t % 3 == 0) {
      step(0, {0, 1, 2}, t);
    } else if (t % 3 == 1) {
      step(0, {0, 2}, t);
    } else {
      step(0, {1}, t);
    }
    if (t % 10 == 0) step(1, {3}, t);
    if (t == 40) {
      // Sequence 2 replaced by a new one with another context: the same recordings serve it.
      for (Side& side : sides) {
        side.pools[0]->release(side.seqs[2]);
        REQUIRE(side.model->forward(*side.pools[0], side.seqs[2], prompt(90, 9), a.data()).ok());
      }
    }
  }
  CHECK(sides[0].seqs[0].n_cached > 256);
  // One recording per (pool, rows, key span), the warm-up's included.
  const auto counts = recorded->recording_counts();
  CHECK(counts.replayed == steps + 1);
  CHECK(counts.recorded == static_cast<int64_t>(keys.size()) + 1);
  CHECK(direct->recording_counts().recorded == 0);
}

TEST_CASE("decode steps that need the host are not recorded") {
  // BF16 experts (the host groups the rows by expert), a trace, dense attention.
  auto bf16 = load_backend_model("bf16");
  auto dense = load_backend_model("fp8", AttentionMode::dense);
  auto traced = load_backend_model("fp8");
  for (BackendModel* m : {bf16.get(), dense.get(), traced.get()}) {
    KvCache cache(m->config(), cpu::LatentFormat::bf16, 4, m->cache_memory());
    Sequence seq;
    std::vector<float> logits(static_cast<size_t>(m->config().vocab_size));
    const std::vector<int32_t> prompt{3, 1, 4, 1, 5};
    REQUIRE(m->forward(cache, seq, prompt, logits.data()).ok());
    for (int32_t t = 0; t < 3; ++t) {
      ForwardTrace trace;
      REQUIRE(m->forward(cache, seq, {&t, 1}, logits.data(), m == traced.get() ? &trace : nullptr).ok());
    }
    CHECK(m->recording_counts().replayed == 0);
  }
  // The same fp8 model without a trace records.
  KvCache cache(traced->config(), cpu::LatentFormat::bf16, 4, traced->cache_memory());
  Sequence seq;
  std::vector<float> logits(static_cast<size_t>(traced->config().vocab_size));
  const int32_t tok = 7;
  REQUIRE(traced->forward(cache, seq, {&tok, 1}, logits.data()).ok());
  CHECK(traced->recording_counts().replayed == 1);
}


TEST_CASE("two thread ranks replay their decode steps with the collectives recorded, as run op by op") {
  // Each rank's recording holds its all-reduces and all-gathers (Backend::collective); replayed,
  // the ranks meet in them as when the steps run op by op. The tiny FP8 model keeps o_proj whole
  // (64 hidden rows per rank would cut a scale block); a copy 256 wide splits it, so its gathers
  // are recorded too.
  test::TempDir tmp("dsa-backend-wide");
  auto wide_cfg = preset_config("tiny");
  REQUIRE(wide_cfg.ok());
  wide_cfg->hidden_size = 256;
  REQUIRE(wide_cfg->splits_hidden_rows(2));
  REQUIRE(make_model(tmp / "wide", *wide_cfg, {.seed = 3}).ok());
  const auto steps = [](BackendModel& model) {
    const ModelConfig& c = model.config();
    KvCache cache(c, cpu::LatentFormat::fp8, 12, model.cache_memory());
    std::vector<Sequence> seqs(2);
    std::vector<float> logits(static_cast<size_t>(2 * c.vocab_size)), all;
    for (int b = 0; b < 2; ++b) {
      std::vector<int32_t> prompt(b == 0 ? 250 : 20);
      for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 13 + b + 1) % c.vocab_size);
      REQUIRE(model.forward(cache, seqs[b], prompt, logits.data()).ok());
    }
    std::vector<Sequence*> rows{&seqs[0], &seqs[1]};
    for (int t = 0; t < 12; ++t) {  // sequence 0 passes 256 keys
      const std::vector<int32_t> toks{argmax(std::span(logits).first(size_t(c.vocab_size))), 40 + t};
      REQUIRE(model.forward_decode_batch(cache, rows, toks, logits.data()).ok());
      all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
  };
  for (const std::filesystem::path& dir : {tiny_dir("fp8"), tmp / "wide"}) {
    CAPTURE(dir);
    std::vector<float> got[2][2];  // [recorded][rank]
    int64_t replayed[2] = {0, 0};
    for (int recorded = 0; recorded < 2; ++recorded) {
      auto comms = make_thread_comms(2);
      std::vector<std::unique_ptr<BackendModel>> ranks(2);
      for (int r = 0; r < 2; ++r) {
        auto m = BackendModel::load(dir, AttentionMode::sparse, std::make_unique<CpuBackend>(), {}, comms[r].get());
        REQUIRE_MESSAGE(m.ok(), m.error().message);
        ranks[r] = std::move(m.value());
        ranks[r]->set_check_topk(false);
        ranks[r]->set_recorded_decode(recorded == 1);
      }
      std::thread t1([&] { got[recorded][1] = steps(*ranks[1]); });
      got[recorded][0] = steps(*ranks[0]);
      t1.join();
      replayed[recorded] = ranks[0]->recording_counts().replayed;
      CHECK(ranks[1]->recording_counts().replayed == replayed[recorded]);
    }
    CHECK(replayed[0] == 0);
    CHECK(replayed[1] == 12);
    CHECK(got[1][0] == got[1][1]);
    CHECK(same_bits(got[1][0], got[0][0]));
  }
}


TEST_CASE("past 64 recordings the least recently replayed one makes room") {
  auto model = load_backend_model("fp8");
  const ModelConfig& c = model->config();
  // One pool per key: a one-token step in each records once.
  std::vector<std::unique_ptr<KvCache>> pools;
  std::vector<Sequence> seqs(70);
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  const auto step = [&](size_t p) {
    const int32_t tok = static_cast<int32_t>(p % 50 + 1);
    REQUIRE(model->forward(*pools[p], seqs[p], {&tok, 1}, logits.data()).ok());
  };
  for (size_t p = 0; p < 70; ++p) {
    pools.push_back(std::make_unique<KvCache>(c, cpu::LatentFormat::fp8, 1, model->cache_memory()));
    step(p);
    if (p == 10) step(0);  // pool 0 replayed after pools 1-10 were recorded
  }
  CHECK(model->recording_counts().recorded == 70);
  // Kept: the 64 most recently used, pool 0 among them (used after 1-10); 1-6 made room.
  step(69);
  step(0);
  CHECK(model->recording_counts().recorded == 70);
  step(1);
  CHECK(model->recording_counts().recorded == 71);
  CHECK(model->recording_counts().replayed == 70 + 1 + 3);
}

}  // namespace
}  // namespace dsa::test
