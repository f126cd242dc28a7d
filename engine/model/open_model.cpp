#include "engine/model/open_model.hpp"

#include "engine/model/backend_model.hpp"
#include "engine/model/model.hpp"
#include "engine/runtime/generator.hpp"
#ifdef DSA_WITH_CUDA
#include "engine/backend/backend_cuda.hpp"
#endif

namespace dsa {

Result<Device> parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  return make_error("unknown device '" + name + "' (cpu or cuda)");
}

Result<std::unique_ptr<ForwardPass>> open_model(const std::filesystem::path& dir, const OpenOptions& options) {
  if (options.device == Device::cpu) {
    DSA_TRY(model, Model::load(dir, options.attention));
    return std::unique_ptr<ForwardPass>(std::move(model));
  }
#ifdef DSA_WITH_CUDA
  if (cuda_device_count() == 0) return make_error("--device cuda: no CUDA GPU is visible to this process");
  DSA_TRY(cfg, load_config(dir / "config.json"));
  MemoryPlanOptions plan;
  plan.context = options.context;
  plan.sequences = options.sequences;
  plan.fp8_cache = default_latent_format(cfg) == cpu::LatentFormat::fp8;
  DSA_TRY(model, BackendModel::load(dir, options.attention, std::make_unique<CudaBackend>(0), plan));
  return std::unique_ptr<ForwardPass>(std::move(model));
#else
  return make_error("--device cuda: this dsagent was built without CUDA (rebuild with the CUDA toolkit present)");
#endif
}

}  // namespace dsa
