#include "engine/model/open_model.hpp"

#include <algorithm>

#include "engine/model/backend_model.hpp"
#include "engine/model/model.hpp"
#include "engine/model/rank_group.hpp"
#include "engine/model/rank_processes.hpp"
#include "engine/runtime/generator.hpp"
#ifdef DSA_WITH_CUDA
#include "engine/backend/backend_cuda.hpp"
#endif
#ifdef DSA_WITH_NCCL
#include "engine/dist/nccl_comm.hpp"
#endif

namespace dsa {

Result<Device> parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  return make_error("unknown device '" + name + "' (cpu or cuda)");
}

Result<std::unique_ptr<ForwardPass>> load_rank(const std::filesystem::path& dir, const OpenOptions& options,
                                               Comm* comm) {
  if (options.device == Device::cpu) {
    DSA_TRY(model, Model::load(dir, options.attention, comm));
    return std::unique_ptr<ForwardPass>(std::move(model));
  }
#ifdef DSA_WITH_CUDA
  DSA_TRY(cfg, load_config(dir / "config.json"));
  MemoryPlanOptions plan;
  plan.context = options.context;
  plan.sequences = options.sequences;
  plan.fp8_cache = default_latent_format(cfg) == cpu::LatentFormat::fp8;
  const int gpu = options.gpu >= 0 ? options.gpu : comm ? comm->rank() : 0;
  DSA_TRY(model, BackendModel::load(dir, options.attention, std::make_unique<CudaBackend>(gpu), plan, comm));
  model->set_recorded_decode(options.cuda_graphs);
  return std::unique_ptr<ForwardPass>(std::move(model));
#else
  return make_error("--device cuda: this dsagent was built without CUDA (rebuild with the CUDA toolkit present)");
#endif
}

namespace {

// Ranks on threads of this process: thread Comms on the CPU, NCCL on GPUs 0..n-1.
Result<std::unique_ptr<ForwardPass>> open_rank_threads(const std::filesystem::path& dir, const OpenOptions& options) {
  std::vector<std::unique_ptr<Comm>> comms;
  if (options.device == Device::cpu) {
    comms = make_thread_comms(options.ranks);
  } else {
#ifdef DSA_WITH_NCCL
    std::vector<int> devices;
    for (int g = 0; g < options.ranks; ++g) devices.push_back(g);
    DSA_TRY(nccl, make_nccl_comms(devices));
    comms = std::move(nccl);
#else
    return make_error("--gpus " + std::to_string(options.ranks) + ": this dsagent was built without NCCL");
#endif
  }
  std::vector<std::unique_ptr<ForwardPass>> ranks;
  for (int r = 0; r < options.ranks; ++r) {
    DSA_TRY(model, load_rank(dir, options, comms[size_t(r)].get()));
    ranks.push_back(std::move(model));
  }
  return std::unique_ptr<ForwardPass>(std::make_unique<RankGroup>(std::move(comms), std::move(ranks)));
}

}  // namespace

Result<std::unique_ptr<ForwardPass>> open_model(const std::filesystem::path& dir, const OpenOptions& options) {
  if (options.ranks < 1) return make_error("--ranks must be at least 1");
  if (options.device == Device::cuda) {
#ifdef DSA_WITH_CUDA
    const int visible = cuda_device_count();
    if (visible == 0) return make_error("--device cuda: no CUDA GPU is visible to this process");
    // The ranks this machine runs need a GPU each here (with --local-ranks the others are elsewhere).
    const int here = options.processes && options.local_ranks > 0 ? std::min(options.local_ranks, options.ranks)
                                                                    : options.ranks;
    if (here > visible) {
      return make_error(std::to_string(here) + " GPU ranks on this machine: only " + std::to_string(visible) +
                        " CUDA GPU(s) are visible to this process");
    }
#else
    return make_error("--device cuda: this dsagent was built without CUDA (rebuild with the CUDA toolkit present)");
#endif
  }
  if (options.ranks == 1) return load_rank(dir, options, nullptr);
  if (options.processes) return open_rank_processes(dir, options);
  return open_rank_threads(dir, options);
}

}  // namespace dsa
