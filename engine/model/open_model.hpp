// Opening a model for generation on a chosen device: Model on the CPU, BackendModel on a CUDA GPU.
// The only place that picks an engine by device.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "engine/api/result.hpp"
#include "engine/dist/comm.hpp"
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
  // Tensor- and expert-parallel ranks (model.hpp "parallel layout"): with cuda, GPUs 0..ranks-1
  // (NCCL); on the CPU, ranks sharing this machine's cores.
  int ranks = 1;
  // One process per rank (this one is rank 0; the others run `rank_program rank-worker`) instead
  // of one thread per rank (engine/model/rank_processes.hpp).
  bool processes = false;
  std::string rank_program;  // "" = this process's own program (/proc/self/exe)
  // With processes: where rank 0 waits for the others, "" for a private Unix socket (every rank on
  // this machine) or HOST:PORT (TCP), and how many ranks this machine starts (0: all; ranks
  // local_ranks..ranks-1 are started on other machines with `dsagent rank-worker --connect`).
  std::string rank_address;
  int local_ranks = 0;
  int gpu = -1;  // this rank's GPU with cuda; -1: the GPU numbered as its rank
  // With cuda: decode steps replayed as CUDA graphs where they can be (backend_model.hpp).
  bool cuda_graphs = true;
};

// An error (one line) when the device is cuda and this build has no CUDA (or no NCCL for ranks > 1)
// or the machine too few GPUs, when the model does not fit into a GPU, when its heads, experts or
// dense intermediate do not split over the GPUs, or when the model directory is bad.
Result<std::unique_ptr<ForwardPass>> open_model(const std::filesystem::path& dir, const OpenOptions& options);

// One rank's model for `options`' device (GPU `comm->rank()` on cuda), joined to the others by comm
// (null: a single rank): what open_model loads per rank, and a worker process loads for itself.
Result<std::unique_ptr<ForwardPass>> load_rank(const std::filesystem::path& dir, const OpenOptions& options,
                                               Comm* comm);

}  // namespace dsa
