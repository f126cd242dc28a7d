// Opening a model for generation on a chosen device: Model on the CPU, BackendModel on a CUDA GPU.
// The only place that picks an engine by device.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "engine/api/result.hpp"
#include "engine/model/forward_pass.hpp"

namespace dsa {

enum class Device { cpu, cuda };

// "cpu" or "cuda"; anything else is an error naming the choices.
Result<Device> parse_device(const std::string& name);

struct OpenOptions {
  AttentionMode attention = AttentionMode::sparse;
  Device device = Device::cpu;
  int64_t context = 32768;  // tokens per sequence, for the memory check on a GPU
  int64_t sequences = 1;    // sequences held at once, likewise
  int gpus = 1;             // with cuda: GPUs 0..gpus-1, tensor and expert parallel (one thread each, NCCL)
};

// An error (one line) when the device is cuda and this build has no CUDA (or no NCCL for gpus > 1)
// or the machine too few GPUs, when the model does not fit into a GPU, when its heads, experts or
// dense intermediate do not split over the GPUs, or when the model directory is bad.
Result<std::unique_ptr<ForwardPass>> open_model(const std::filesystem::path& dir, const OpenOptions& options);

}  // namespace dsa
