// Random-weight checkpoints in the exact Hugging Face DeepSeek-V3.2 layout (what `dsagent
// make-model` writes): config.json, safetensors shard(s) (+ index), tokenizer.json,
// tokenizer_config.json and generation_config.json.
//
// Weights are seeded and reproducible tensor by tensor (each tensor's stream depends only on the
// seed and its name), scaled so activations keep their size through the layers: linears
// ~ N(0, 1/in) (approximately normal: a sum of four uniforms), then, for FP8, quantised per 128x128
// block to e4m3 with power-of-two scales 2^ceil(log2(amax/448)); norms ~ 1; router, biases small.
// Tensors are generated and written one 128-row strip at a time, so memory stays small whatever
// the model size.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/model/config.hpp"

namespace dsa {

struct MakeModelOptions {
  int n_shards = 1;      // 1: a single model.safetensors; N > 1: model-0000i-of-0000N + index
  uint64_t seed = 0;
  bool overwrite = false;  // allow a non-empty output directory (its checkpoint files are replaced)
};

struct MakeModelSummary {
  std::vector<std::filesystem::path> files;  // every file written
  int64_t n_tensors = 0;
  uint64_t tensor_bytes = 0;
};

// progress (optional) is called once per shard, before it is written, with its file name.
Result<MakeModelSummary> make_model(const std::filesystem::path& out_dir, const ModelConfig& config,
                                    const MakeModelOptions& options,
                                    const std::function<void(const std::string&)>& progress = {});

}  // namespace dsa
