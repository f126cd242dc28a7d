// `dsagent generate` and `dsagent bench` on a make-model tiny checkpoint, through the binary:
// greedy output is deterministic, streams the same text --json reports, tokenises the prompt as
// the tokenizer does, and bench reports the bytes its documented accounting implies.
#include <doctest/doctest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/chat/encoder.hpp"
#include "engine/model/make_model.hpp"
#include "engine/tokenizer/tokenizer.hpp"
#include "tests/test_support.hpp"

namespace dsa {
namespace {

using test::run_command;

struct TinyModel {
  test::TempDir tmp{"dsa-cli-generate"};
  std::filesystem::path dir = tmp / "tiny";
  TinyModel() {
    auto cfg = preset_config("tiny");
    REQUIRE(cfg.ok());
    REQUIRE(make_model(dir, *cfg, {.seed = 5}).ok());
  }
  std::string generate(const std::string& flags) const {
    return test::dsagent_binary().string() + " generate --model " + dir.string() + " " + flags;
  }
};

TEST_CASE("generate --raw: deterministic, tokenised as plain text, streamed text equals --json text") {
  TinyModel m;
  const std::string flags = "--prompt 'Hello world, <think> is text here' --raw --max-tokens 12";
  const auto a = run_command(m.generate(flags + " --json"));
  const auto b = run_command(m.generate(flags + " --json"));
  REQUIRE(a.exit_code == 0);
  CHECK(a.output == b.output);
  const auto j = nlohmann::json::parse(a.output);
  auto tok = Tokenizer::load(m.dir / "tokenizer.json");
  REQUIRE(tok.ok());
  const std::vector<int32_t> expect_prompt = tok->encode("Hello world, <think> is text here", false);
  CHECK(j["prompt_ids"].get<std::vector<int32_t>>() == expect_prompt);
  CHECK(j["usage"]["prompt_tokens"].get<int64_t>() == int64_t(expect_prompt.size()));
  std::vector<int32_t> ids = j["ids"].get<std::vector<int32_t>>();
  CHECK(j["usage"]["completion_tokens"].get<int64_t>() == int64_t(ids.size()));
  if (j["finish"] == "length") CHECK(ids.size() == 12);
  if (!ids.empty() && ids.back() == 1) ids.pop_back();  // EOS is not text
  CHECK(j["text"].get<std::string>() == tok->decode(ids));

  const auto streamed = run_command(m.generate(flags + " 2>/dev/null"));
  REQUIRE(streamed.exit_code == 0);
  CHECK(streamed.output == j["text"].get<std::string>() + "\n");
  const auto with_usage = run_command(m.generate(flags + " 2>&1 >/dev/null"));
  CHECK(with_usage.output.find("prompt_tokens=" + std::to_string(expect_prompt.size())) != std::string::npos);
}

TEST_CASE("generate --logprobs: per generated token its log-probability and the most likely ids") {
  TinyModel m;
  const auto r = run_command(m.generate("--prompt 'Hello world' --raw --json --max-tokens 6 --logprobs 4"));
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output);
  const auto ids = j["ids"].get<std::vector<int32_t>>();
  REQUIRE(j["logprobs"].size() == ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& step = j["logprobs"][i];
    REQUIRE(step["top"].size() == 4);
    CHECK(step["top"][0][0].get<int32_t>() == ids[i]);  // greedy: the chosen id is the most likely
    CHECK(step["logprob"].get<double>() == step["top"][0][1].get<double>());
    CHECK(step["logprob"].get<double>() <= 0.0);
    CHECK(step["top"][3][1].get<double>() <= step["top"][2][1].get<double>());
  }
  CHECK_FALSE(nlohmann::json::parse(run_command(m.generate("--prompt hi --raw --json --max-tokens 2")).output)
                  .contains("logprobs"));
  const auto chat = run_command(m.generate("--prompt hi --logprobs 2 2>&1"));
  CHECK(chat.exit_code == 2);
  CHECK(chat.output == "dsagent generate: --logprobs needs --raw and --json\n");
}

TEST_CASE("generate --raw --special: special-token text becomes the special tokens") {
  TinyModel m;
  const std::string prompt = "<｜User｜>Hi<｜Assistant｜><think>";
  const auto r = run_command(m.generate("--prompt '" + prompt + "' --raw --special --max-tokens 2 --json"));
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output);
  auto tok = Tokenizer::load(m.dir / "tokenizer.json");
  REQUIRE(tok.ok());
  const auto with_special = tok->encode(prompt, true);
  CHECK(j["prompt_ids"].get<std::vector<int32_t>>() == with_special);
  const auto user = tok->encode("<｜User｜>", true);
  REQUIRE(user.size() == 1);
  CHECK(with_special.front() == user.front());
  CHECK(with_special != tok->encode(prompt, false));
}

TEST_CASE("generate (chat): the prompt goes through the chat encoder") {
  TinyModel m;
  const auto r = run_command(m.generate("--prompt 'What is 2+2?' --max-tokens 10 --temperature 0.7 --seed 3 --json"));
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output);
  auto tok = Tokenizer::load(m.dir / "tokenizer.json");
  REQUIRE(tok.ok());
  const std::vector<Message> messages = {Message{.role = Role::user, .content = "What is 2+2?"}};
  const std::string prompt = join_text(encode_messages(messages, {}, EncodeOptions{}));
  CHECK(j["usage"]["prompt_tokens"].get<int64_t>() == int64_t(tok->encode(prompt, true).size()));
  CHECK(j["usage"]["completion_tokens"].get<int64_t>() >= 1);
  CHECK(j["usage"]["completion_tokens"].get<int64_t>() <= 10);
  CHECK(j.contains("reasoning"));
  CHECK(j.contains("content"));
  CHECK(j["tool_calls"].is_array());
  // Seeded sampling reproduces.
  const auto again = run_command(m.generate("--prompt 'What is 2+2?' --max-tokens 10 --temperature 0.7 --seed 3 --json"));
  CHECK(again.output == r.output);
}

TEST_CASE("generate: bad input is one line on stderr and a non-zero exit") {
  TinyModel m;
  const auto missing = run_command(test::dsagent_binary().string() + " generate --model " + (m.tmp / "nope").string() +
                                   " --prompt hi 2>&1");
  CHECK(missing.exit_code != 0);
  CHECK(missing.output.find("nope") != std::string::npos);
  CHECK(std::count(missing.output.begin(), missing.output.end(), '\n') == 1);
  const auto bad_mode = run_command(m.generate("--prompt hi --attention sideways 2>&1"));
  CHECK(bad_mode.exit_code != 0);
}

TEST_CASE("generate and bench --device cuda without a GPU, and --gpus without cuda: one line, non-zero exit") {
  TinyModel m;
  const std::string bin = test::dsagent_binary().string();
  // This machine has no usable GPU (or the build no CUDA): the line says which.
  for (const std::string& cmd : {m.generate("--prompt hi --device cuda 2>&1"),
                                 bin + " bench --model " + m.dir.string() + " --device cuda 2>&1"}) {
    CAPTURE(cmd);
    const auto r = run_command(cmd);
    if (r.exit_code == 0) {
      MESSAGE("a CUDA GPU is present");
      continue;
    }
    CHECK(r.output.find("--device cuda: ") != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  }
  const auto gpus = run_command(m.generate("--prompt hi --gpus 2 2>&1"));
  CHECK(gpus.exit_code != 0);
  CHECK(gpus.output == "dsagent generate: --gpus 2 needs --device cuda\n");
}

TEST_CASE("generate --ranks 2: threads and processes give one rank's output; a lost or failing rank is one line") {
  TinyModel m;
  const std::string flags = "--prompt 'Hello world' --raw --max-tokens 10 --json --logprobs 3 2>/dev/null";
  const auto one = run_command(m.generate(flags));
  REQUIRE(one.exit_code == 0);
  const auto threads = run_command(m.generate("--ranks 2 " + flags));
  const auto processes = run_command(m.generate("--ranks 2 --launch processes " + flags));
  REQUIRE(threads.exit_code == 0);
  REQUIRE(processes.exit_code == 0);
  CHECK(threads.output == one.output);  // tokens and log-probabilities, bit for bit
  CHECK(run_command(m.generate("--tp 2 --ep 2 " + flags)).output == threads.output);  // the same layout
  const auto split_ep = run_command(m.generate("--tp 2 --ep 1 --prompt hi 2>&1"));
  CHECK(split_ep.exit_code == 1);
  CHECK(split_ep.output ==
        "dsagent generate: --ep 1: the experts are split over the same 2 rank(s) as the heads (--tp / --ranks / --gpus)\n");
  CHECK(processes.output == threads.output);

  // A rank that cannot load its share (tiny's heads do not split 3 ways): the error, one line.
  const auto uneven = run_command(m.generate("--ranks 3 --launch processes --prompt hi 2>&1"));
  CHECK(uneven.exit_code == 1);
  CHECK(std::count(uneven.output.begin(), uneven.output.end(), '\n') == 1);
  CHECK(uneven.output.rfind("dsagent generate: ", 0) == 0);

  // A rank on "another machine": rank 0 starts none (--local-ranks 1), waits at a TCP address and
  // says how to start it; the rank started by hand joins and the output is the same.
  const std::string err = (m.tmp / "rank0.err").string(), out = (m.tmp / "rank0.out").string();
  {
    std::ofstream script(m.tmp / "by_hand.sh");
    script << m.generate("--ranks 2 --launch processes --rank-address 127.0.0.1:0 --local-ranks 1 " +
                         flags.substr(0, flags.find(" 2>")))
           << " > " << out << " 2> " << err << " & P=$!\n"
           << "A=; for i in $(seq 1 300); do A=$(sed -n "
           << R"('s/.*--connect \([^ ]*\) --token \([^ ]*\) --rank R.*/\1 --token \2/p' )" << err
           << "); [ -n \"$A\" ] && break; sleep 0.1; done\n"
           << test::dsagent_binary().string() << " rank-worker --connect $A --rank 1 --ranks 2; echo worker=$?\n"
           << "wait $P; echo rank0=$?; cat " << out << "\n";
  }
  const auto by_hand = run_command("bash " + (m.tmp / "by_hand.sh").string());
  CAPTURE(by_hand.output);
  CHECK(by_hand.output == "worker=0\nrank0=0\n" + one.output);
  // The same worker when rank 0 is killed mid-generation: it ends at once with one line. Rank 0 is
  // killed once it has streamed text, so the worker has joined (a worker that never reaches rank 0
  // retries its connection for a minute instead).
  {
    // Files of its own: a stale address left by the run above would send the worker to a closed port.
    const std::string err = (m.tmp / "orphan.err").string(), out = (m.tmp / "orphan.out").string();
    std::ofstream script(m.tmp / "orphan.sh");
    script << m.generate(
                  "--ranks 2 --launch processes --rank-address 127.0.0.1:0 --local-ranks 1 --prompt hi --raw "
                  "--temperature 1 --seed 3 --max-tokens 100000")
           << " > " << out << " 2> " << err << " & P=$!; disown $P\n"  // its SIGKILL is not the shell's to report
           << "A=; for i in $(seq 1 300); do A=$(sed -n "
           << R"('s/.*--connect \([^ ]*\) --token \([^ ]*\) --rank R.*/\1 --token \2/p' )" << err
           << "); [ -n \"$A\" ] && break; sleep 0.1; done\n"
           << test::dsagent_binary().string() << " rank-worker --connect $A --rank 1 --ranks 2 2> "
           << (m.tmp / "worker.err").string() << " & W=$!\n"
           << "for i in $(seq 1 300); do [ -s " << out << " ] && break; sleep 0.1; done\n"
           << "kill -9 $P; wait $W; echo worker=$?; cat " << (m.tmp / "worker.err").string() << "\n";
  }
  const auto orphan = run_command("timeout 90 bash " + (m.tmp / "orphan.sh").string());
  CAPTURE(orphan.output);
  CHECK(orphan.output.rfind("worker=1\n", 0) == 0);
  CHECK(orphan.output.find("rank 0") != std::string::npos);
  CHECK(std::count(orphan.output.begin(), orphan.output.end(), '\n') == 2);

  const auto no_address = run_command(m.generate("--ranks 2 --launch processes --local-ranks 1 --prompt hi 2>&1"));
  CHECK(no_address.exit_code == 1);
  CHECK(no_address.output.find("need --rank-address HOST:PORT") != std::string::npos);
  const auto no_processes = run_command(m.generate("--ranks 2 --rank-address 127.0.0.1:0 --prompt hi 2>&1"));
  CHECK(no_processes.output == "dsagent generate: --rank-address and --local-ranks need --launch processes\n");

  // The worker killed mid-generation: rank 0 stops at once with one line naming rank 1.
  const std::string script =
      m.generate("--prompt hi --raw --temperature 1 --seed 3 --max-tokens 100000 --ranks 2 --launch processes") +
      " >/dev/null 2>" + (m.tmp / "err").string() + " & P=$!; W=; for i in $(seq 1 300); do W=$(pgrep -P $P); "
      "[ -n \"$W\" ] && break; sleep 0.1; done; sleep 0.3; kill -9 $W; wait $P; echo rc=$?; grep -v '^usage' " +
      (m.tmp / "err").string();
  const auto killed = run_command("bash -c '" + [&] {
    std::string quoted;
    for (char c : script) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted;
  }() + "'");
  CAPTURE(killed.output);
  CHECK(killed.output.rfind("rc=1\n", 0) == 0);
  CHECK(killed.output.find("rank 1") != std::string::npos);
  CHECK(killed.output.find("the rank group cannot go on") != std::string::npos);
  CHECK(std::count(killed.output.begin(), killed.output.end(), '\n') == 2);
}

TEST_CASE("bench --json: lines per position with the documented byte accounting") {
  TinyModel m;
  const auto run = [&](const std::string& mode) {
    const auto r = run_command(test::dsagent_binary().string() + " bench --model " + m.dir.string() +
                               " --positions 64,300 --tokens 2 --prefill-tokens 32 --probe-mib 8 --threads 1 --json"
                               " --attention " + mode + " 2>/dev/null");
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.output);
  };
  // tiny: 3 layers, FP8 latent records of 128 + 4 + 2*32 = 196 bytes, indexer keys of 64 + 4 bytes,
  // index_topk 16. Timed steps run at context lengths P+2 and P+3 (one untimed warm-up first).
  const double record = 196, key = 68, layers = 3;
  std::ifstream cfg_file(m.dir / "config.json");
  const auto cfg = nlohmann::json::parse(cfg_file);
  for (const std::string mode : {"sparse", "dense"}) {
    CAPTURE(mode);
    const auto j = run(mode);
    const double bw = j["machine"]["mem_bw_gbs"].get<double>();
    CHECK(bw > 0);
    REQUIRE(j["runs"].size() == 3);  // the prefill, then one decode line per position
    const auto& prefill = j["runs"][0];
    CHECK(prefill["phase"] == "prefill");
    CHECK(prefill["tokens"].get<int64_t>() == 32);
    CHECK(prefill["batch"].get<int64_t>() == 1);
    CHECK(prefill["attention"] == mode);
    CHECK(prefill["tokens_per_s"].get<double>() > 0);
    CHECK(prefill["bytes_per_token"].get<double>() ==
          doctest::Approx(j["weight_bytes_per_token"].get<double>() / 32).epsilon(1e-9));
    for (size_t i = 1; i < 3; ++i) {
      const auto& line = j["runs"][i];
      CHECK(line["phase"] == "decode");
      CHECK(line["batch"].get<int64_t>() == 1);
      CHECK(line["attention"] == mode);
      const double p = line["position"].get<double>();
      CHECK(p == (i == 1 ? 64 : 300));
      const double mean_n = p + 2.5;
      const double expect = mode == "sparse" ? layers * (16 * record + mean_n * key) : layers * mean_n * record;
      CHECK(line["cache_bytes_per_token"].get<double>() == doctest::Approx(expect).epsilon(1e-9));
      CHECK(line["bytes_per_token"].get<double>() ==
            doctest::Approx(line["weight_bytes_per_token"].get<double>() + expect).epsilon(1e-9));
      CHECK(line["tokens_per_s"].get<double>() > 0);
      CHECK(line["bandwidth_share"].get<double>() ==
            doctest::Approx(line["bytes_per_token"].get<double>() * line["tokens_per_s"].get<double>() / (bw * 1e9))
                .epsilon(1e-6));
    }
    CHECK(j["runs"][1]["weight_bytes_per_token"].get<double>() > 0);

    // The per-phase breakdown: every phase named, none negative, together the step's time
    // ("other" is the rest); the indexer's selection runs only in sparse mode.
    CHECK(j["machine"]["fma_peak_gflops"].get<double>() > 0);
    CHECK(prefill["compute_share"].get<double>() > 0);
    // tiny is FP8: its linears are held to the BF16 dot peak where dsagent multiplies them in bf16
    // pairs (built, as this test is, for a CPU with AVX512_BF16), else to the FMA peak.
#if defined(__AVX512BF16__)
    CHECK(j["machine"]["bf16_dot_peak_gflops"].get<double>() > 0);
    CHECK(prefill["compute_peak"] == "bf16_dot");
#else
    CHECK(j["machine"]["bf16_dot_peak_gflops"].get<double>() == 0);
    CHECK(prefill["compute_peak"] == "fma");
#endif
    const std::vector<std::string> phases = {"projections", "indexer", "topk", "attention", "moe", "mlp",
                                             "lm_head", "other"};
    const auto check_phases = [&](const nlohmann::json& ms, double total_ms) {
      REQUIRE(ms.size() == phases.size());
      double named = 0;  // every phase but "other"
      for (const auto& name : phases) {
        CAPTURE(name);
        REQUIRE(ms.contains(name));
        CHECK(ms[name].get<double>() >= 0);
        if (name != "other") named += ms[name].get<double>();
      }
      // tiny has a dense first layer and MoE layers after it; every one of these phases runs.
      for (const char* name : {"projections", "indexer", "attention", "moe", "mlp", "lm_head"}) {
        CAPTURE(name);
        CHECK(ms[name].get<double>() > 0);
      }
      const bool selected = ms["topk"].get<double>() > 0;
      CHECK(selected == (mode == "sparse"));
      // The phases are disjoint parts of the timed call (a phase counted twice, say one nested in
      // another, would overrun it), and "other" is the rest.
      CHECK(named <= total_ms * (1 + 1e-9));
      CHECK(ms["other"].get<double>() == doctest::Approx(total_ms - named).epsilon(1e-6));
    };
    check_phases(prefill["phases_ms"], 1e3 * prefill["seconds"].get<double>());
    for (size_t i = 1; i < 3; ++i) {
      const auto& line = j["runs"][i];
      check_phases(line["phases_ms_per_token"], line["ms_per_token"].get<double>());
      CHECK(line.contains("indexer_compute_share") == (mode == "sparse"));
      if (mode == "sparse") {
        // 2 FLOPs per index head and dimension per cached key and layer, mean context P + 2.5.
        const double flops = 2.0 * cfg["index_n_heads"].get<double>() * cfg["index_head_dim"].get<double>() * layers *
                             (line["position"].get<double>() + 2.5);
        const double ms = line["phases_ms_per_token"]["indexer"].get<double>();
        CHECK(line["indexer_gflop_s"].get<double>() == doctest::Approx(flops / (ms * 1e-3) / 1e9).epsilon(1e-6));
      }
    }

    // The DSA kernels alone, one query over the longest position's 300 keys: tiny's 4 index heads
    // of 64, index_topk 16, 4 attention heads over records of kv_lora 128 + rope 32.
    const auto& k = j["kernels"];
    CHECK(k["keys"].get<int64_t>() == 300);
    CHECK(k["selected"].get<int64_t>() == 16);
    const double index_flops =
        2.0 * cfg["index_n_heads"].get<double>() * cfg["index_head_dim"].get<double>() * 300;
    CHECK(k["indexer_scores"]["flops"].get<double>() == index_flops);
    CHECK(k["indexer_scores"]["bytes"].get<double>() == 300 * key);
    CHECK(k["topk"]["bytes"].get<double>() == 300 * 4);
    CHECK_FALSE(k["topk"].contains("flops"));
    const double heads = cfg["num_attention_heads"].get<double>(), lora = cfg["kv_lora_rank"].get<double>();
    const double rope = cfg["qk_rope_head_dim"].get<double>();
    CHECK(k["sparse_attention"]["flops"].get<double>() == 2.0 * heads * 16 * (2 * lora + rope));
    CHECK(k["sparse_attention"]["bytes"].get<double>() == 16 * record);
    for (const char* name : {"indexer_scores", "topk", "sparse_attention"}) {
      CAPTURE(name);
      const auto& t = k[name];
      REQUIRE(t["us"].get<double>() > 0);
      CHECK(t["gb_s"].get<double>() == doctest::Approx(t["bytes"].get<double>() / t["us"].get<double>() / 1e3));
      CHECK(t["bandwidth_share"].get<double>() == doctest::Approx(t["gb_s"].get<double>() / bw));
      if (t.contains("flops")) {
        CHECK(t["tflop_s"].get<double>() == doctest::Approx(t["flops"].get<double>() / t["us"].get<double>() / 1e6));
        CHECK(t["compute_share"].get<double>() > 0);
      }
    }

    // The host's draw from one row of the vocabulary's logits.
    const auto& s = j["sampling"];
    CHECK(s["vocab"].get<int64_t>() == cfg["vocab_size"].get<int64_t>());
    CHECK(s["greedy_us"].get<double>() > 0);
    CHECK(s["top_p_0_95_us"].get<double>() > 0);
    CHECK(s["top_p_0_95_nucleus_ids"].get<int64_t>() >= 1);
    CHECK(s["top_p_0_95_nucleus_ids"].get<int64_t>() <= s["vocab"].get<int64_t>());
  }
}

TEST_CASE("bench --batch: B sequences per step, the weights counted once per step") {
  TinyModel m;
  const std::string base = test::dsagent_binary().string() + " bench --model " + m.dir.string() +
                            " --positions 64,100 --tokens 2 --prefill-tokens 0 --probe-mib 8 --threads 1";
  const auto r = run_command(base + " --batch 1,3 --json 2>/dev/null");
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output);
  REQUIRE(j["runs"].size() == 4);  // batch 1 at both positions, then batch 3
  const double weights = j["weight_bytes_per_token"].get<double>();
  for (size_t i = 0; i < 4; ++i) {
    const auto& line = j["runs"][i];
    const int64_t batch = i < 2 ? 1 : 3;
    CAPTURE(i);
    CHECK(line["phase"] == "decode");
    CHECK(line["batch"].get<int64_t>() == batch);
    CHECK(line["position"].get<int64_t>() == (i % 2 == 0 ? 64 : 100));
    CHECK(line["weight_bytes_per_token"].get<double>() == doctest::Approx(weights / double(batch)));
    // Each sequence reads its own cache: the same bytes per token at the same position.
    CHECK(line["cache_bytes_per_token"].get<double>() ==
          doctest::Approx(j["runs"][i % 2]["cache_bytes_per_token"].get<double>()));
    CHECK(line["ms_per_step"].get<double>() ==
          doctest::Approx(line["ms_per_token"].get<double>() * double(batch)).epsilon(1e-9));
    CHECK(line["tokens_per_s"].get<double>() == doctest::Approx(1e3 / line["ms_per_token"].get<double>()));
  }
  const auto bad = run_command(base + " --batch 2,0 2>&1");
  CHECK(bad.exit_code != 0);
  CHECK(bad.output.find("--batch: '0' is not an integer from 1 to 1024") != std::string::npos);
}

TEST_CASE("bench --concurrency --json: one request, then N at once, every id counted") {
  TinyModel m;
  const auto r = run_command(test::dsagent_binary().string() + " bench --model " + m.dir.string() +
                             " --positions 64 --tokens 6 --prefill-tokens 0 --probe-mib 8 --threads 1 --json"
                             " --concurrency 3 2>/dev/null");
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.output);
  REQUIRE(j["runs"].size() == 3);  // the decode line at position 64, then the scheduler's two
  CHECK_FALSE(j["runs"][0].contains("through_scheduler"));
  for (size_t i = 0; i < 2; ++i) {
    const auto& run = j["runs"][i + 1];
    const int64_t batch = i == 0 ? 1 : 3;
    CAPTURE(batch);
    CHECK(run["phase"] == "decode");
    CHECK(run["batch"].get<int64_t>() == batch);
    CHECK(run["position"].get<int64_t>() == 64);
    CHECK(run["bandwidth_share"].get<double>() > 0);
    CHECK(run["tokens_decoded"].get<int64_t>() == batch * 6);  // each request decodes 6 ids after its first
    // The rate's window: the steady state (all decoding) when there was one, else the whole span.
    CHECK(run["tokens"].get<int64_t>() > 0);
    CHECK(run["tokens"].get<int64_t>() <= batch * 6);
    if (!run["steady_state"].get<bool>()) CHECK(run["tokens"].get<int64_t>() == batch * 6);
    CHECK(run["seconds"].get<double>() > 0);
    CHECK(run["tokens_per_s"].get<double>() ==
          doctest::Approx(run["tokens"].get<double>() / run["seconds"].get<double>()));
  }
  CHECK(j["runs"][1]["speedup"].get<double>() == doctest::Approx(1.0));
}

}  // namespace
}  // namespace dsa
