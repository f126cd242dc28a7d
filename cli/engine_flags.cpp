#include "cli/engine_flags.hpp"

namespace dsa::cli {

namespace {

// Ranks are threads or processes on this machine, or GPUs: far fewer than this.
constexpr int kMaxRanks = 1024;

}  // namespace

void add_engine_flags(CLI::App& cmd, EngineFlags& flags, const std::string& group) {
  cmd.add_option("--device", flags.device, "local engine: cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->group(group);
  cmd.add_option("--gpus", flags.gpus, "local engine on cuda: GPUs 0..N-1, heads and experts split over them (NCCL)")
      ->check(CLI::Range(1, kMaxRanks))
      ->group(group);
  cmd.add_option("--ranks,--tp", flags.ranks,
                 "local engine: N tensor- and expert-parallel ranks (GPUs 0..N-1 with cuda, else CPU ranks)")
      ->check(CLI::Range(1, kMaxRanks))
      ->group(group);
  cmd.add_option("--ep", flags.ep,
                 "expert-parallel ranks: the experts are split over the --tp ranks, so N must equal them")
      ->check(CLI::Range(1, kMaxRanks))
      ->group(group);
  cmd.add_option("--launch", flags.launch, "with several ranks: one thread per rank, or one process per rank")
      ->capture_default_str()
      ->check(CLI::IsMember({"threads", "processes"}))
      ->group(group);
  cmd.add_option("--rank-address", flags.rank_address,
                 "with --launch processes: HOST:PORT where rank 0 waits for the ranks (TCP; default a local socket)")
      ->group(group);
  cmd.add_option("--local-ranks", flags.local_ranks,
                 "with --launch processes: ranks this machine starts; the others run `dsagent rank-worker` elsewhere")
      ->check(CLI::Range(1, kMaxRanks))
      ->group(group);
}

Result<OpenOptions> engine_options(const EngineFlags& flags) {
  DSA_TRY(device, parse_device(flags.device));
  if (flags.gpus > 1 && device != Device::cuda)
    return make_error("--gpus " + std::to_string(flags.gpus) + " needs --device cuda");
  if (flags.gpus > 0 && flags.ranks > 0 && flags.gpus != flags.ranks)
    return make_error("--gpus " + std::to_string(flags.gpus) + " and --ranks " + std::to_string(flags.ranks) +
                      " disagree (with cuda each rank is one GPU)");
  OpenOptions options;
  options.device = device;
  options.ranks = std::max({1, flags.gpus, flags.ranks});
  if (flags.ep > 0 && flags.ep != options.ranks)
    return make_error("--ep " + std::to_string(flags.ep) + ": the experts are split over the same " +
                      std::to_string(options.ranks) + " rank(s) as the heads (--tp / --ranks / --gpus)");
  options.processes = flags.launch == "processes";
  options.rank_address = flags.rank_address;
  options.local_ranks = flags.local_ranks;
  if ((!flags.rank_address.empty() || flags.local_ranks > 0) && !options.processes)
    return make_error("--rank-address and --local-ranks need --launch processes");
  return options;
}

}  // namespace dsa::cli
