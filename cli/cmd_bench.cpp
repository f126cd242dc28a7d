// `dsagent bench` (cli.md, performance.md): decode tokens/s at chosen positions, prefill tokens/s,
// and for every line the bytes read per token and the share of the machine's measured read
// bandwidth reached (plus FLOPs per token and the rate achieved).
//
// A position P is reached without prefilling P tokens: the caches of positions 0..P-1 are filled
// with random entries written through the kernels' cache writers (cpu::latent_write,
// cpu::indexer_write), since a decode step's cost depends on how much cache it reads, not on the
// values. Then --tokens decode steps are timed after one untimed warm-up step.
//
// Every line also gives the time per phase (engine/model/phase_times.hpp), and the run measures the
// fp32 FMA peak (cpu::measure_fma_peak), and the bf16 dot peak where the FP8 products (linears,
// indexer scores) use bf16 pairs, so that the compute-bound parts (prefill's linears, the indexer
// at long contexts) are reported as a share of their limit.
//
// --concurrency N adds the aggregate decode rate of N concurrent requests through the scheduler
// against one (cli/bench/concurrency.hpp). Last, the three DSA kernels are timed alone on the
// engine's backend at the longest position (cli/bench/dsa_kernels.hpp), and the host's draw of a
// token from one row of logits (cli/bench/sampling.hpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli/bench/bandwidth_probe.hpp"
#include "cli/bench/concurrency.hpp"
#include "cli/bench/cost_model.hpp"
#include "cli/bench/dsa_kernels.hpp"
#include "cli/bench/sampling.hpp"
#include "cli/commands.hpp"
#include "engine/api/types.hpp"
#include "engine/backend/backend_cpu.hpp"
#include "engine/loader/safetensors.hpp"
#include "engine/model/open_model.hpp"
#include "engine/runtime/generator.hpp"
#include "engine/runtime/kv_cache.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/peak.hpp"
#include "kernels/dtypes.hpp"
#ifdef DSA_WITH_CUDA
#include "engine/backend/backend_cuda.hpp"
#endif

namespace dsa::cli {

namespace {

// Limits of the flags: a thread per concurrent request, a sequence's cache per batch row, two
// probe arrays of --probe-mib; and positions and steps whose sums stay far from overflowing.
constexpr int64_t kMaxBenchBatch = 1024;
constexpr int64_t kMaxBenchPosition = int64_t(1) << 24;
constexpr int64_t kMaxBenchTokens = int64_t(1) << 20;
constexpr int64_t kMaxProbeMib = 16384;

struct BenchArgs {
  std::string model_dir;
  std::string device = "cpu";
  std::string positions = "1024,32768";
  std::string batch = "1";
  std::string attention = "sparse";
  int64_t tokens = 8;
  int64_t prefill_tokens = 512;
  int threads = 0;
  int64_t probe_mib = 256;
  int64_t concurrency = 0;  // 0: no concurrent line
  std::string cuda_graphs = "on";
  bool json = false;
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Roughly unit-variance bf16 values (sum of two uniforms), reproducible per (layer, position).
void random_bf16(uint64_t& s, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = splitmix64(s);
    const float u = float(r & 0xffffffu) / float(1 << 24) + float((r >> 32) & 0xffffffu) / float(1 << 24) - 1.0f;
    out[i] = round_bf16(2.45f * u);
  }
}

// Writes random cache entries for positions 0..n-1 of every layer; seq then holds n tokens. A cache
// in a backend's memory (a GPU's) is written on the host, page by page, and uploaded.
Result<void> fill_cache(KvCache& cache, Sequence& seq, const ModelConfig& cfg, int64_t n) {
  if (auto r = cache.reserve(seq, n); !r) return r.error();
  const int64_t lora = cfg.kv_lora_rank, rope = cfg.qk_rope_head_dim, dk = cfg.index_head_dim;
  Backend* device = cache.memory();
  const size_t latent_page = size_t(kPageTokens) * cache.record_bytes(), index_page = cache.indexer_page_bytes();
  const int64_t n_pages = (n + kPageTokens - 1) / kPageTokens;
  std::vector<uint8_t> latent_host, index_host;
  std::vector<int32_t> host_pages;  // page i of seq at host page i
  if (device) {
    latent_host.assign(size_t(n_pages) * latent_page, 0);
    index_host.assign(size_t(n_pages) * index_page, 0);
    for (int64_t i = 0; i < n_pages; ++i) host_pages.push_back(int32_t(i));
  }
  for (int64_t layer = 0; layer < cfg.num_hidden_layers; ++layer) {
    uint8_t* latent = device ? latent_host.data() : cache.latent_arena(layer);
    uint8_t* index = device ? index_host.data() : cache.indexer_arena(layer);
    const int32_t* pages = device ? host_pages.data() : seq.pages.data();
    cpu::parallel_for(n, [&](int64_t lo, int64_t hi) {
      std::vector<float> c_kv(static_cast<size_t>(lora)), k_pe(static_cast<size_t>(rope)), key(static_cast<size_t>(dk));
      for (int64_t pos = lo; pos < hi; ++pos) {
        uint64_t s = uint64_t(layer) << 40 ^ uint64_t(pos);
        random_bf16(s, c_kv.data(), lora);
        random_bf16(s, k_pe.data(), rope);
        random_bf16(s, key.data(), dk);
        cpu::latent_write(latent, pages, cache.format(), lora, rope, pos, c_kv.data(), k_pe.data());
        cpu::indexer_write(index, pages, dk, pos, key.data());
      }
    }, 64);
    for (int64_t i = 0; device && i < n_pages; ++i) {
      const auto page = size_t(seq.pages[size_t(i)]);
      device->upload(cache.latent_arena(layer) + page * latent_page, latent + size_t(i) * latent_page, latent_page);
      device->upload(cache.indexer_arena(layer) + page * index_page, index + size_t(i) * index_page, index_page);
    }
  }
  seq.n_cached = n;
  return {};
}

struct DecodeLine {
  int64_t position = 0;
  int64_t batch = 1;              // sequences decoded together per step
  double seconds_per_token = 0;   // step time / batch
  double weight_bytes = 0, cache_bytes = 0, flops = 0, indexer_flops = 0;
  PhaseTimes phases;  // seconds per token by phase

  // FLOP/s of the indexer's scores (0 when it did not run: dense attention).
  double indexer_rate() const {
    return indexer_flops > 0 && phases[Phase::indexer] > 0 ? indexer_flops / phases[Phase::indexer] : 0;
  }
};

// Parses a comma-separated list of integers from min_value to max_value for option `name`.
Result<std::vector<int64_t>> parse_list(const std::string& text, const std::string& name, int64_t min_value,
                                        int64_t max_value) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < min_value || v > max_value) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      return make_error(name + ": '" + item.substr(0, 40) + "' is not an integer from " + std::to_string(min_value) +
                        " to " + std::to_string(max_value));
    }
  }
  if (out.empty()) return make_error(name + ": no value given");
  return out;
}

// Milliseconds per token by phase, "other" being what the phases leave out of the total.
json phase_json(const PhaseTimes& p, double seconds_total) {
  json out = json::object();
  for (size_t i = 0; i < kPhaseNames.size(); ++i) out[std::string(kPhaseNames[i])] = 1e3 * p.seconds[i];
  out["other"] = 1e3 * std::max(0.0, seconds_total - p.total());
  return out;
}

std::string phase_text(const PhaseTimes& p, double seconds_total) {
  std::string out;
  char buf[64];
  for (size_t i = 0; i < kPhaseNames.size(); ++i) {
    if (p.seconds[i] <= 0) continue;
    std::snprintf(buf, sizeof buf, "%s%.*s %.2f", out.empty() ? "" : ", ", int(kPhaseNames[i].size()),
                  kPhaseNames[i].data(), 1e3 * p.seconds[i]);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, ", other %.2f", 1e3 * std::max(0.0, seconds_total - p.total()));
  return out + buf;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "dsagent bench: %s\n", msg.c_str());
  return 1;
}

int run_bench(const BenchArgs& args) {
  auto device = parse_device(args.device);
  if (!device.ok()) return fail(device.error().message);
  auto positions = parse_list(args.positions, "--positions", 0, kMaxBenchPosition);
  if (!positions.ok()) return fail(positions.error().message);
  auto batches = parse_list(args.batch, "--batch", 1, kMaxBenchBatch);
  if (!batches.ok()) return fail(batches.error().message);
  const int64_t max_batch = *std::max_element(batches->begin(), batches->end());
  if (args.threads > 0) cpu::set_num_threads(args.threads);
  const AttentionMode mode = args.attention == "dense" ? AttentionMode::dense : AttentionMode::sparse;

  auto ckpt = Checkpoint::open(args.model_dir);
  if (!ckpt.ok()) return fail(ckpt.error().message);
  auto config = load_config(std::filesystem::path(args.model_dir) / "config.json");
  if (!config.ok()) return fail(config.error().message);
  const int64_t max_pos = *std::max_element(positions->begin(), positions->end());
  const int64_t context = std::max(max_pos + args.tokens + 1, args.prefill_tokens);
  if (context > config->max_position_embeddings)
    return fail("position " + std::to_string(context) + " is beyond max_position_embeddings " +
                std::to_string(config->max_position_embeddings));
  const bool graphs = *device == Device::cuda && args.cuda_graphs == "on";
  auto loaded = open_model(args.model_dir, OpenOptions{.attention = mode,
                                                       .device = *device,
                                                       .context = context,
                                                       .sequences = max_batch,
                                                       .cuda_graphs = graphs});
  if (!loaded.ok()) return fail(loaded.error().message);
  ForwardPass& model = **loaded;
  const ModelConfig& cfg = model.config();
  const WeightTraffic weights = weight_traffic(*ckpt, cfg);
  const cpu::LatentFormat fmt = default_latent_format(cfg);  // as LocalLlm runs
  std::fprintf(stderr, "bench: measuring memory bandwidth...\n");
  // The limits: host read bandwidth and the FMA peak on the CPU; device-memory bandwidth on a GPU
  // (no compute peak measured there: compute shares are left out).
  std::string machine = "cpu";
  double bandwidth = 0, fma_peak = 0, bf16_dot_peak = 0;
  if (*device == Device::cpu) {
    bandwidth = measure_read_bandwidth(args.probe_mib << 20);
    fma_peak = cpu::measure_fma_peak();
    bf16_dot_peak = cpu::measure_bf16_dot_peak();
  } else {
#ifdef DSA_WITH_CUDA
    auto& gpu = dynamic_cast<CudaBackend&>(*model.cache_memory());
    machine = gpu.device_name();
    bandwidth = gpu.measure_copy_bandwidth(size_t(std::max<int64_t>(args.probe_mib, 1024)) << 20);
#endif
  }

  // The limit of the FP8 products (the FP8 linears, the indexer's scores): the bf16 pair dot
  // products where they run on them, else the fp32 FMA peak, as every other product.
  const bool bf16_fp8 = cpu::fp8_products_use_bf16_dot() && bf16_dot_peak > 0;
  const double fp8_peak = bf16_fp8 ? bf16_dot_peak : fma_peak;
  const char* fp8_peak_name = bf16_fp8 ? "BF16 dot peak" : "FMA peak";
  const bool bf16_linears = cfg.fp8 && bf16_fp8;
  const double linear_peak = bf16_linears ? bf16_dot_peak : fma_peak;
  const char* linear_peak_name = bf16_linears ? "BF16 dot peak" : "FMA peak";
  KvCache cache = model.make_cache(fmt, max_batch * ((context + kPageTokens - 1) / kPageTokens));
  std::vector<float> logits(size_t(max_batch * cfg.vocab_size));
  uint64_t token_seed = 1;
  const auto next_token = [&] { return int32_t(3 + splitmix64(token_seed) % uint64_t(cfg.vocab_size - 3)); };

  // Prefill from position 0 with synthetic ids, one forward call.
  double prefill_seconds = 0;
  PhaseTimes prefill_phases;
  if (args.prefill_tokens > 0) {
    std::fprintf(stderr, "bench: prefill of %lld tokens...\n", (long long)args.prefill_tokens);
    std::vector<int32_t> ids(size_t(args.prefill_tokens));
    for (int32_t& id : ids) id = next_token();
    Sequence seq;
    model.set_phase_times(&prefill_phases);
    const auto t0 = Clock::now();
    auto r = model.forward(cache, seq, ids, logits.data());
    prefill_seconds = since(t0);
    model.set_phase_times(nullptr);
    cache.release(seq);
    if (!r.ok()) return fail(r.error().message);
  }

  // Decode lines: for each batch size B and position P, B sequences with P cached tokens each take
  // --tokens steps together (forward_decode_batch; B = 1 is a plain forward).
  std::vector<DecodeLine> lines;
  for (int64_t batch : *batches) {
    for (int64_t pos : *positions) {
      std::fprintf(stderr, "bench: decode at position %lld, batch %lld...\n", (long long)pos, (long long)batch);
      std::vector<Sequence> seqs(static_cast<size_t>(batch));
      std::vector<Sequence*> rows;
      for (Sequence& seq : seqs) {
        if (auto r = fill_cache(cache, seq, cfg, pos); !r.ok()) return fail(r.error().message);
        rows.push_back(&seq);
      }
      DecodeLine line{.position = pos, .batch = batch};
      double seconds = 0;
      std::vector<int32_t> ids(static_cast<size_t>(batch));
      for (int64_t i = 0; i <= args.tokens; ++i) {
        for (int32_t& id : ids) id = next_token();
        model.set_phase_times(i > 0 ? &line.phases : nullptr);
        const auto t0 = Clock::now();
        auto r = batch == 1 ? model.forward(cache, seqs[0], ids, logits.data())
                            : model.forward_decode_batch(cache, rows, ids, logits.data());
        if (!r.ok()) return fail(r.error().message);
        if (i > 0) {  // step 0 warms the workspace up
          seconds += since(t0);
          const CacheTraffic c = cache_traffic(cfg, fmt, mode, seqs[0].n_cached);
          line.cache_bytes += c.bytes;
          line.flops += c.flops + 2.0 * weights.matmul_params;
          line.indexer_flops += c.indexer_flops;
        }
      }
      model.set_phase_times(nullptr);
      const double n = double(std::max<int64_t>(args.tokens, 1));
      line.seconds_per_token = seconds / n / double(batch);
      for (double& v : line.phases.seconds) v /= n * double(batch);
      line.weight_bytes = weights.bytes_per_token / double(batch);  // read once per step
      line.cache_bytes /= n;
      line.flops /= n;
      line.indexer_flops /= n;
      lines.push_back(line);
      for (Sequence& seq : seqs) cache.release(seq);
    }
  }

  // The DSA kernels alone, one query over the longest position's keys, on the engine's backend
  // (the CPU's reference kernels for the CPU engine).
  std::fprintf(stderr, "bench: the DSA kernels alone...\n");
  CpuBackend host_backend;
  Backend& kernel_backend = model.cache_memory() ? *model.cache_memory() : host_backend;
  const DsaKernelTimes kernels = time_dsa_kernels(kernel_backend, cfg, fmt, std::max<int64_t>(max_pos, 1));

  // The host's draw of a token from the last step's first row of logits.
  std::fprintf(stderr, "bench: sampling on the host...\n");
  const SamplingTimes sampling = time_sampling(std::span(logits).first(size_t(cfg.vocab_size)));

  std::vector<ConcurrentDecode> concurrent;  // one request, then --concurrency at once
  if (args.concurrency > 0) {
    std::fprintf(stderr, "bench: decode of %lld concurrent requests through the scheduler...\n",
                 (long long)args.concurrency);
    auto c = measure_concurrent_decode(args.model_dir, mode, args.concurrency, args.tokens, *device);
    if (!c.ok()) return fail(c.error().message);
    concurrent = std::move(*c);
  }

  const double prefill_tps = prefill_seconds > 0 ? double(args.prefill_tokens) / prefill_seconds : 0;
  const double prefill_gflops = prefill_tps * 2.0 * weights.matmul_params / 1e9;  // linears only
  if (args.json) {
    // machine: what the run measured the hardware at; runs: one entry per measured line, prefill,
    // decode per position (batch 1, synthetic cache), then the concurrent decodes.
    json out = {{"model", std::filesystem::path(args.model_dir).filename().string()},
                {"machine",
                 {{"device", machine},
                  {"threads", cpu::num_threads()},
                  {"mem_bw_gbs", bandwidth / 1e9},
                  {"fma_peak_gflops", fma_peak / 1e9},
                  {"bf16_dot_peak_gflops", bf16_dot_peak / 1e9}}},
                {"attention", args.attention},
                {"cuda_graphs", graphs},
                {"weight_bytes_per_token", weights.bytes_per_token}};
    json runs = json::array();
    if (args.prefill_tokens > 0) {
      // One forward call over all the prompt tokens reads every weight once.
      const double bytes = weights.bytes_per_token / double(args.prefill_tokens);
      runs.push_back({{"phase", "prefill"},
                      {"position", 0},
                      {"batch", 1},
                      {"attention", args.attention},
                      {"tokens", args.prefill_tokens},
                      {"seconds", prefill_seconds},
                      {"tokens_per_s", prefill_tps},
                      {"bytes_per_token", bytes},
                      {"bandwidth_share", bytes * prefill_tps / bandwidth},
                      {"linear_gflop_s", prefill_gflops},
                      {"compute_share", linear_peak > 0 ? prefill_gflops * 1e9 / linear_peak : 0.0},
                      {"compute_peak", bf16_linears ? "bf16_dot" : "fma"},
                      {"phases_ms", phase_json(prefill_phases, prefill_seconds)}});
    }
    for (const DecodeLine& l : lines) {
      const double bytes = l.weight_bytes + l.cache_bytes;
      runs.push_back({{"phase", "decode"},
                      {"position", l.position},
                      {"batch", l.batch},
                      {"attention", args.attention},
                      {"synthetic_cache", true},
                      {"tokens_per_s", 1.0 / l.seconds_per_token},
                      {"ms_per_token", 1e3 * l.seconds_per_token},
                      {"ms_per_step", 1e3 * l.seconds_per_token * double(l.batch)},
                      {"bytes_per_token", bytes},
                      {"weight_bytes_per_token", l.weight_bytes},
                      {"cache_bytes_per_token", l.cache_bytes},
                      {"gb_s", bytes / l.seconds_per_token / 1e9},
                      {"bandwidth_share", bytes / l.seconds_per_token / bandwidth},
                      {"gflop_per_token", l.flops / 1e9},
                      {"gflop_s", l.flops / l.seconds_per_token / 1e9},
                      {"phases_ms_per_token", phase_json(l.phases, l.seconds_per_token)}});
      if (const double rate = l.indexer_rate(); rate > 0 && fp8_peak > 0) {
        runs.back()["indexer_gflop_s"] = rate / 1e9;
        runs.back()["indexer_compute_share"] = rate / fp8_peak;
      }
    }
    for (const ConcurrentDecode& c : concurrent) {
      // Each step reads the weights once for the whole batch (cache traffic left out: short prompts).
      const double bytes = weights.bytes_per_token / double(c.batch);
      runs.push_back({{"phase", "decode"},
                      {"position", c.prompt_tokens},
                      {"batch", c.batch},
                      {"attention", args.attention},
                      {"through_scheduler", true},
                      {"tokens_decoded", c.tokens_decoded},
                      {"steady_state", c.steady},
                      {"tokens", c.tokens},
                      {"seconds", c.seconds},
                      {"tokens_per_s", c.tokens_per_s},
                      {"tokens_per_s_per_request", c.tokens_per_s / double(c.batch)},
                      {"speedup", c.tokens_per_s / concurrent.front().tokens_per_s},
                      {"bytes_per_token", bytes},
                      {"bandwidth_share", bytes * c.tokens_per_s / bandwidth}});
    }
    out["runs"] = runs;
    const auto kernel_json = [&](const KernelTime& t, double peak) {
      json j = {{"us", 1e6 * t.seconds}, {"bytes", t.bytes}, {"gb_s", t.bytes / t.seconds / 1e9},
                {"bandwidth_share", t.bytes / t.seconds / bandwidth}};
      if (t.flops > 0) {
        j["flops"] = t.flops;
        j["tflop_s"] = t.flops / t.seconds / 1e12;
        if (peak > 0) j["compute_share"] = t.flops / t.seconds / peak;
      }
      return j;
    };
    out["kernels"] = {{"keys", kernels.keys},
                      {"selected", kernels.selected},
                      {"indexer_scores", kernel_json(kernels.indexer, fp8_peak)},
                      {"topk", kernel_json(kernels.topk, fma_peak)},
                      {"sparse_attention", kernel_json(kernels.attention, fma_peak)}};
    out["sampling"] = {{"vocab", cfg.vocab_size},
                       {"greedy_us", 1e6 * sampling.greedy_seconds},
                       {"top_p_0_95_us", 1e6 * sampling.nucleus_seconds},
                       {"top_p_0_95_nucleus_ids", sampling.nucleus_ids}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("model %s: %lld layers, hidden %lld, %s weights (%.1f MB in the main layers), attention %s, on %s%s\n",
              args.model_dir.c_str(), (long long)cfg.num_hidden_layers, (long long)cfg.hidden_size,
              cfg.fp8 ? "FP8" : "BF16", weights.checkpoint_bytes / 1e6, args.attention.c_str(),
              *device == Device::cpu ? (std::to_string(cpu::num_threads()) + " CPU threads").c_str() : machine.c_str(),
              *device == Device::cpu ? "" : graphs ? ", decode steps as CUDA graphs" : ", decode steps without CUDA graphs");
  if (fma_peak > 0) {
    std::printf("memory bandwidth (two-array fp32 dot product, 2 x %lld MiB): %.2f GB/s\n", (long long)args.probe_mib,
                bandwidth / 1e9);
    std::printf("fp32 FMA peak (independent chains on every thread): %.1f GFLOP/s\n", fma_peak / 1e9);
    if (bf16_dot_peak > 0)
      std::printf("BF16 dot peak (AVX512_BF16 pair products on every thread): %.1f GFLOP/s%s\n", bf16_dot_peak / 1e9,
                  bf16_fp8 ? ", the limit of the FP8 linears and the indexer" : "");
  } else {
    std::printf("device memory bandwidth (device-to-device copy, read + write): %.2f GB/s\n", bandwidth / 1e9);
  }
  if (args.prefill_tokens > 0) {
    std::printf("prefill %lld tokens: %.3f s, %.1f tokens/s, %.2f GFLOP/s in the linears", (long long)args.prefill_tokens,
                prefill_seconds, prefill_tps, prefill_gflops);
    if (linear_peak > 0)
      std::printf(" = %.0f%% of the %s", 100.0 * prefill_gflops * 1e9 / linear_peak, linear_peak_name);
    std::printf("\n");
    std::printf("  ms: %s\n", phase_text(prefill_phases, prefill_seconds).c_str());
  }
  for (const DecodeLine& l : lines) {
    const double bytes = l.weight_bytes + l.cache_bytes, gbs = bytes / l.seconds_per_token / 1e9;
    char batch[48] = "";
    if (l.batch > 1)
      std::snprintf(batch, sizeof batch, ", batch %lld (%.2f ms/step)", (long long)l.batch,
                    1e3 * l.seconds_per_token * double(l.batch));
    std::printf("decode @ %lld%s: %.2f tokens/s (%.2f ms/token); read %.2f MB/token (weights %.2f + cache %.2f): "
                "%.2f GB/s = %.0f%% of bandwidth; %.3f GFLOP/token, %.2f GFLOP/s\n",
                (long long)l.position, batch, 1.0 / l.seconds_per_token, 1e3 * l.seconds_per_token, bytes / 1e6,
                l.weight_bytes / 1e6, l.cache_bytes / 1e6, gbs, 100.0 * gbs * 1e9 / bandwidth, l.flops / 1e9,
                l.flops / l.seconds_per_token / 1e9);
    std::printf("  ms/token: %s\n", phase_text(l.phases, l.seconds_per_token).c_str());
    if (const double rate = l.indexer_rate(); rate > 0 && fp8_peak > 0) {
      std::printf("  indexer: %.3f GFLOP/token at %.2f GFLOP/s = %.0f%% of the %s\n", l.indexer_flops / 1e9, rate / 1e9,
                  100.0 * rate / fp8_peak, fp8_peak_name);
    }
  }
  const size_t n_pos = positions->size();
  for (size_t b = 0; n_pos > 1 && b < batches->size(); ++b) {
    const DecodeLine& first = lines[b * n_pos];
    const DecodeLine& last = lines[b * n_pos + n_pos - 1];
    std::printf("tokens/s @ %lld / @ %lld%s = %.2f\n", (long long)last.position, (long long)first.position,
                first.batch > 1 ? (", batch " + std::to_string(first.batch)).c_str() : "",
                first.seconds_per_token / last.seconds_per_token);
  }
  for (size_t p = 0; p < n_pos && batches->size() > 1; ++p) {  // the last batch size against the first
    const DecodeLine& one = lines[p];
    const DecodeLine& many = lines[(batches->size() - 1) * n_pos + p];
    std::printf("batch %lld / batch %lld @ %lld: %.2fx the tokens/s\n", (long long)many.batch, (long long)one.batch,
                (long long)one.position, one.seconds_per_token / many.seconds_per_token);
  }
  const auto kernel_line = [&](const char* what, const KernelTime& t, bool fp8_products) {
    std::printf("  %s: %.1f us", what, 1e6 * t.seconds);
    const double peak = fp8_products ? fp8_peak : fma_peak;
    if (t.flops > 0) {
      const double rate = t.flops / t.seconds;
      std::printf(", %.3f TFLOP/s", rate / 1e12);
      if (peak > 0) std::printf(" = %.0f%% of the %s", 100.0 * rate / peak, fp8_products ? fp8_peak_name : "FMA peak");
    }
    std::printf(", %.2f GB/s = %.1f%% of bandwidth\n", t.bytes / t.seconds / 1e9, 100.0 * t.bytes / t.seconds / bandwidth);
  };
  std::printf("DSA kernels alone, one query over %lld keys:\n", (long long)kernels.keys);
  kernel_line(
      ("indexer scores (" + std::to_string(cfg.index_n_heads) + " heads x " + std::to_string(cfg.index_head_dim) + ")")
          .c_str(),
      kernels.indexer, true);
  kernel_line(("top-k (k " + std::to_string(kernels.selected) + ") of the score row").c_str(), kernels.topk, false);
  kernel_line(("sparse attention (" + std::to_string(cfg.num_attention_heads) + " heads x " +
               std::to_string(kernels.selected) + " records)")
                  .c_str(),
              kernels.attention, false);
  std::printf("sampling one row of %lld logits on the host: greedy %.1f us; temperature 1, top-p 0.95 %.1f us "
              "(nucleus of %lld ids)\n",
              (long long)cfg.vocab_size, 1e6 * sampling.greedy_seconds, 1e6 * sampling.nucleus_seconds,
              (long long)sampling.nucleus_ids);
  for (const ConcurrentDecode& c : concurrent)
    std::printf("decode, %lld concurrent request%s through the scheduler: %.2f tokens/s in all (%.2f each), %.2fx one\n",
                (long long)c.batch, c.batch == 1 ? "" : "s", c.tokens_per_s, c.tokens_per_s / double(c.batch),
                c.tokens_per_s / concurrent.front().tokens_per_s);
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Measure decode and prefill speed against the machine's memory bandwidth");
  cmd->footer(
      "Positions are reached by writing random cache entries (decode cost depends on the cache size,\n"
      "not its values), then --tokens decode steps are timed. --concurrency N runs N requests of 64\n"
      "random ids at once through the scheduler, each decoding --tokens ids, and one request alone.\n"
      "--batch B decodes B sequences at each position in one pass per step (the weights are read\n"
      "once per step, counted as for one token: a lower bound when the tokens pick different experts).\n"
      "Each line breaks its time down by phase (projections, indexer, topk, attention, moe, mlp,\n"
      "lm_head); compute-bound parts are also given as a share of the measured FMA peak (the FP8\n"
      "linears and the indexer's scores: of the BF16 dot peak where they use AVX512_BF16).\n"
      "Last, the three DSA kernels run alone on the engine's backend (CPU or GPU), one query over the\n"
      "longest position's keys: indexer scores, top-k of the score row, sparse attention over\n"
      "index_topk records, each with its time, TFLOP/s and share of the bandwidth; and the host's\n"
      "draw of a token from one row of logits (greedy; temperature 1 with top-p 0.95).\n"
      "Examples:\n"
      "  dsagent make-model /tmp/bench-s --preset bench-s && dsagent bench --model /tmp/bench-s\n"
      "  dsagent bench --model /tmp/bench-s --positions 1024,131072 --attention dense --json\n"
      "  dsagent bench --model /tmp/bench-s --concurrency 8 --tokens 32\n"
      "  dsagent bench --model /tmp/bench-s --positions 1024 --batch 1,8");
  cmd->add_option("--model", args->model_dir, "model directory (config.json + safetensors)")->required();
  cmd->add_option("--device", args->device, "cpu or cuda (one GPU; phases are not timed there)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--positions", args->positions, "comma-separated decode positions")->capture_default_str();
  cmd->add_option("--batch", args->batch,
                  "comma-separated batch sizes: sequences decoded together per step, each at the position")
      ->capture_default_str();
  cmd->add_option("--attention", args->attention, "sparse (DSA) or dense causal attention")
      ->capture_default_str()->check(CLI::IsMember({"sparse", "dense"}));
  cmd->add_option("--tokens", args->tokens, "timed decode steps per position")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), kMaxBenchTokens));
  cmd->add_option("--prefill-tokens", args->prefill_tokens, "tokens of the prefill line (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), kMaxBenchPosition));
  cmd->add_option("--threads", args->threads, "CPU threads (default: all, or DSA_THREADS)")
      ->check(CLI::Range(0, cpu::kMaxThreads));
  cmd->add_option("--probe-mib", args->probe_mib, "size of each bandwidth-probe array")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), kMaxProbeMib));
  cmd->add_option("--concurrency", args->concurrency,
                  "also decode this many concurrent requests through the scheduler (aggregate tokens/s vs one)")
      ->check(CLI::Range(int64_t(1), kMaxBenchBatch));
  cmd->add_option("--cuda-graphs", args->cuda_graphs,
                  "with cuda: decode steps replayed as CUDA graphs (on) or launched op by op (off)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_flag("--json", args->json, "one JSON object on stdout");
  cmd->callback([args, &exit_code] { exit_code = run_bench(*args); });
}

}  // namespace dsa::cli
