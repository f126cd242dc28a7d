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
};

// An error (one line) when the device is cuda and this build has no CUDA or the machine no GPU,
// when the model does not fit into the GPU, or when the model directory is bad.
Result<std::unique_ptr<ForwardPass>> open_model(const std::filesystem::path& dir, const OpenOptions& options);

}  // namespace dsa
