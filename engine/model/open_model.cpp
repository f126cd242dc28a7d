#include "engine/model/open_model.hpp"

#include "engine/model/backend_model.hpp"
#include "engine/model/model.hpp"
#include "engine/model/rank_group.hpp"
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

Result<std::unique_ptr<ForwardPass>> open_model(const std::filesystem::path& dir, const OpenOptions& options) {
  if (options.gpus < 1) return make_error("--gpus must be at least 1");
  if (options.device == Device::cpu) {
    if (options.gpus > 1) return make_error("--gpus " + std::to_string(options.gpus) + " needs --device cuda");
    DSA_TRY(model, Model::load(dir, options.attention));
    return std::unique_ptr<ForwardPass>(std::move(model));
  }
#ifdef DSA_WITH_CUDA
  const int visible = cuda_device_count();
  if (visible == 0) return make_error("--device cuda: no CUDA GPU is visible to this process");
  if (options.gpus > visible) {
    return make_error("--gpus " + std::to_string(options.gpus) + ": only " + std::to_string(visible) +
                      " CUDA GPU(s) are visible to this process");
  }
  DSA_TRY(cfg, load_config(dir / "config.json"));
  MemoryPlanOptions plan;
  plan.context = options.context;
  plan.sequences = options.sequences;
  plan.fp8_cache = default_latent_format(cfg) == cpu::LatentFormat::fp8;
  if (options.gpus == 1) {
    DSA_TRY(model, BackendModel::load(dir, options.attention, std::make_unique<CudaBackend>(0), plan));
    return std::unique_ptr<ForwardPass>(std::move(model));
  }
#ifdef DSA_WITH_NCCL
  std::vector<int> devices;
  for (int g = 0; g < options.gpus; ++g) devices.push_back(g);
  DSA_TRY(comms, make_nccl_comms(devices));
  std::vector<std::unique_ptr<ForwardPass>> ranks;
  for (int g = 0; g < options.gpus; ++g) {
    DSA_TRY(model, BackendModel::load(dir, options.attention, std::make_unique<CudaBackend>(g), plan,
                                      comms[size_t(g)].get()));
    ranks.push_back(std::move(model));
  }
  return std::unique_ptr<ForwardPass>(std::make_unique<RankGroup>(std::move(comms), std::move(ranks)));
#else
  return make_error("--gpus " + std::to_string(options.gpus) + ": this dsagent was built without NCCL");
#endif
#else
  return make_error("--device cuda: this dsagent was built without CUDA (rebuild with the CUDA toolkit present)");
#endif
}

}  // namespace dsa
