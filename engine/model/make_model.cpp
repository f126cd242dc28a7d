// Random-weight checkpoint generation (see make_model.hpp).
#include "engine/model/make_model.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <span>

#include <nlohmann/json.hpp>

#include "engine/loader/safetensors_writer.hpp"
#include "engine/model/inventory.hpp"
#include "engine/tokenizer/make_tokenizer.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/dtypes.hpp"

namespace dsa {

namespace {

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Approximately N(0, 1): the sum of four 16-bit uniforms, centred and scaled to unit variance
  // (bounded by +-3.46; one generator call per value keeps bench-m generation fast).
  float normal() {
    const uint64_t r = next();
    float s = 0.0f;
    for (int i = 0; i < 4; ++i) s += (float((r >> (16 * i)) & 0xffff) + 0.5f) * (1.0f / 65536.0f);
    return (s - 2.0f) * 1.7320508f;
  }
};

uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// The distribution of each tensor's values: mean + std * N(0, 1).
struct Init {
  float mean = 0.0f;
  float stddev = 1.0f;
};

Init init_of(const TensorSpec& s, const ModelConfig& c) {
  const float inv_sqrt_h = 1.0f / std::sqrt(float(c.hidden_size));
  switch (s.role) {
    case TensorRole::embedding: return {0.0f, 1.0f};
    case TensorRole::lm_head: return {0.0f, inv_sqrt_h};
    case TensorRole::norm: return {1.0f, 0.05f};
    case TensorRole::linear: return {0.0f, 1.0f / std::sqrt(float(s.shape[1]))};
    case TensorRole::router: return {0.0f, inv_sqrt_h};
    case TensorRole::router_bias: return {0.0f, 0.01f};
    case TensorRole::indexer_norm:
      return s.name.ends_with(".bias") ? Init{0.0f, 0.02f} : Init{1.0f, 0.05f};
    case TensorRole::indexer_weights: return {0.0f, inv_sqrt_h};
    case TensorRole::linear_scale: break;
  }
  return {0.0f, 1.0f};
}

std::span<const std::byte> as_bytes_of(const auto& v) { return std::as_bytes(std::span(v)); }

class TensorGenerator {
 public:
  TensorGenerator(const ModelConfig& c, uint64_t seed) : c_(c), seed_(seed) {}

  // Writes spec's data (and, for an FP8 linear, its scale tensor) in strips of rows.
  Result<void> write(const TensorSpec& s, SafetensorsWriter& w) {
    SplitMix64 rng{seed_ ^ name_hash(s.name)};
    const Init init = init_of(s, c_);
    const int64_t rows = s.shape.size() == 2 ? s.shape[0] : 1;
    const int64_t cols = s.shape.back();
    const int64_t strip_rows = c_.fp8 ? c_.weight_block_size : 128;
    std::vector<float> strip;
    std::vector<float> scales;  // FP8 only: [ceil(rows/B), ceil(cols/B)]
    for (int64_t r0 = 0; r0 < rows; r0 += strip_rows) {
      const int64_t nr = std::min(strip_rows, rows - r0);
      strip.resize(size_t(nr * cols));
      for (float& v : strip) v = init.mean + init.stddev * rng.normal();
      const size_t offset = size_t(r0 * cols) * dtype_size(s.dtype);
      if (s.dtype == DType::F8_E4M3) {
        if (auto r = w.write(s.name, as_bytes_of(quantize_strip(strip, nr, cols, scales)), offset); !r) return r;
      } else if (s.dtype == DType::BF16) {
        std::vector<uint16_t> out(strip.size());
        for (size_t i = 0; i < strip.size(); ++i) out[i] = float_to_bf16(strip[i]);
        if (auto r = w.write(s.name, as_bytes_of(out), offset); !r) return r;
      } else {
        if (auto r = w.write(s.name, as_bytes_of(strip), offset); !r) return r;
      }
    }
    if (s.dtype == DType::F8_E4M3) return w.write(s.name + "_scale_inv", as_bytes_of(scales));
    return {};
  }

 private:
  // One strip of <= B rows: a power-of-two scale per B x B block, e4m3 codes; the strip's scale
  // row is appended to `scales`.
  std::vector<uint8_t> quantize_strip(const std::vector<float>& x, int64_t nr, int64_t cols, std::vector<float>& scales) const {
    const int64_t b = c_.weight_block_size;
    std::vector<uint8_t> codes(x.size());
    for (int64_t c0 = 0; c0 < cols; c0 += b) {
      const int64_t nc = std::min(b, cols - c0);
      float amax = 0.0f;
      for (int64_t i = 0; i < nr; ++i)
        for (int64_t j = 0; j < nc; ++j) amax = std::max(amax, std::fabs(x[size_t(i * cols + c0 + j)]));
      const float scale = cpu::ue8m0_scale(amax);
      scales.push_back(scale);
      for (int64_t i = 0; i < nr; ++i)
        for (int64_t j = 0; j < nc; ++j) {
          const size_t k = size_t(i * cols + c0 + j);
          codes[k] = float_to_fp8_e4m3(std::clamp(x[k] / scale, -fp8_e4m3_max, fp8_e4m3_max));
        }
    }
    return codes;
  }

  const ModelConfig& c_;
  uint64_t seed_;
};

uint64_t spec_bytes(const TensorSpec& s) { return uint64_t(s.numel()) * dtype_size(s.dtype); }

// Shard of every inventory entry: whole layers per shard (the embedding with the first, the final
// norm and lm_head with the last group), split so shards hold about equal bytes and none is empty.
Result<std::vector<int>> assign_shards(const std::vector<TensorSpec>& inv, const ModelConfig& c, int n_shards) {
  // Units: 0 = embedding, 1 + L = layer L, num_hidden_layers + 1 = final norm and lm_head.
  const int64_t n_units = c.num_hidden_layers + 2;
  if (n_shards < 1 || n_shards > n_units)
    return make_error("shards: " + std::to_string(n_shards) + " is not between 1 and " + std::to_string(n_units) +
                      " (the layers plus the embedding and the head)");
  const auto unit_of = [&](const TensorSpec& s) -> int64_t {
    if (s.layer >= 0) return s.layer + 1;
    return s.role == TensorRole::embedding ? 0 : n_units - 1;
  };
  std::vector<uint64_t> unit_bytes(static_cast<size_t>(n_units), 0);
  uint64_t total = 0;
  for (const TensorSpec& s : inv) {
    unit_bytes[size_t(unit_of(s))] += spec_bytes(s);
    total += spec_bytes(s);
  }
  std::vector<int> shard_of_unit(static_cast<size_t>(n_units));
  int shard = 0;
  int64_t in_shard = 0;
  uint64_t before = 0;  // bytes of the units already placed
  for (int64_t u = 0; u < n_units; ++u) {
    const int64_t units_left = n_units - u;
    const int shards_after = n_shards - 1 - shard;
    const bool past_share =
        double(before) + 0.5 * double(unit_bytes[size_t(u)]) > double(total) * double(shard + 1) / double(n_shards);
    if (in_shard > 0 && shards_after > 0 && (past_share || units_left <= shards_after)) {
      ++shard;
      in_shard = 0;
    }
    shard_of_unit[size_t(u)] = shard;
    ++in_shard;
    before += unit_bytes[size_t(u)];
  }
  std::vector<int> out;
  out.reserve(inv.size());
  for (const TensorSpec& s : inv) out.push_back(shard_of_unit[size_t(unit_of(s))]);
  return out;
}

Result<void> write_file(const std::filesystem::path& path, const std::string& text, MakeModelSummary& summary) {
  if (auto r = write_text_file(path, text); !r) return r;
  summary.files.push_back(path);
  return {};
}

Result<void> prepare_dir(const std::filesystem::path& dir, bool overwrite) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) return make_error(dir.string() + ": exists and is not a directory");
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    if (!overwrite) return make_error(dir.string() + ": directory is not empty");
    // Old checkpoint files would be read instead of (or besides) the new ones.
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name == "model.safetensors" || name == "model.safetensors.index.json" ||
          (name.starts_with("model-") && name.ends_with(".safetensors")))
        fs::remove(entry.path(), ec);
    }
  }
  fs::create_directories(dir, ec);
  if (ec) return make_error(dir.string() + ": cannot create directory: " + ec.message());
  return {};
}

}  // namespace

Result<MakeModelSummary> make_model(const std::filesystem::path& out_dir, const ModelConfig& config,
                                    const MakeModelOptions& options,
                                    const std::function<void(const std::string&)>& progress) {
  if (auto r = validate_config(config, "config"); !r) return r.error();
  const std::vector<TensorSpec> inv = tensor_inventory(config);
  DSA_TRY(shard_of, assign_shards(inv, config, options.n_shards));
  DSA_TRY(tokenizer_json, make_tokenizer_json(config.vocab_size));
  if (auto r = prepare_dir(out_dir, options.overwrite); !r) return r.error();

  MakeModelSummary summary;
  const int n = options.n_shards;
  std::map<std::string, std::string> weight_map;
  TensorGenerator gen(config, options.seed);
  for (int shard = 0; shard < n; ++shard) {
    const std::string file = n == 1 ? "model.safetensors" : shard_file_name(shard + 1, n);
    if (progress) progress(file);
    std::vector<TensorLayout> layout;
    for (size_t i = 0; i < inv.size(); ++i)
      if (shard_of[i] == shard) {
        layout.push_back({inv[i].name, inv[i].dtype, inv[i].shape});
        weight_map[inv[i].name] = file;
        summary.tensor_bytes += spec_bytes(inv[i]);
        ++summary.n_tensors;
      }
    DSA_TRY(writer, SafetensorsWriter::create(out_dir / file, std::move(layout), {{"format", "pt"}}));
    for (size_t i = 0; i < inv.size(); ++i)
      if (shard_of[i] == shard && inv[i].role != TensorRole::linear_scale)
        if (auto r = gen.write(inv[i], writer); !r) return r.error();
    if (auto r = writer.finish(); !r) return r.error();
    summary.files.push_back(out_dir / file);
  }
  if (n > 1) {
    if (auto r = write_safetensors_index(out_dir, weight_map, summary.tensor_bytes); !r) return r.error();
    summary.files.push_back(out_dir / "model.safetensors.index.json");
  }
  const nlohmann::ordered_json generation = {{"bos_token_id", config.bos_token_id}, {"eos_token_id", config.eos_token_id},
                                             {"do_sample", true}, {"temperature", 1.0}, {"top_p", 0.95}};
  if (auto r = write_file(out_dir / "config.json", config_to_json(config), summary); !r) return r.error();
  if (auto r = write_file(out_dir / "generation_config.json", generation.dump(2) + "\n", summary); !r) return r.error();
  if (auto r = write_file(out_dir / "tokenizer.json", tokenizer_json, summary); !r) return r.error();
  if (auto r = write_file(out_dir / "tokenizer_config.json", make_tokenizer_config_json(), summary); !r) return r.error();
  return summary;
}

}  // namespace dsa
