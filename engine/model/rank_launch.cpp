// Ranks in separate processes, the start-up (see rank_processes.hpp): rank 0 listens, starts the
// workers of its machine, sends every rank the model and options, and collects each rank's status
// (its device, then its load) before the group runs; a worker joins, checks, loads and serves.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "engine/model/rank_messages.hpp"
#include "engine/model/rank_processes.hpp"
#include "engine/model/worker_processes.hpp"
#include "kernels/cpu/parallel.hpp"
#ifdef DSA_WITH_CUDA
#include "engine/backend/backend_cuda.hpp"
#endif
#ifdef DSA_WITH_NCCL
#include "engine/dist/nccl_comm.hpp"
#endif

namespace dsa {

using ranks::Op;
using ranks::Reader;
using ranks::status_message;
using ranks::token_text;
using ranks::Writer;

namespace {

// The launch message: the model directory (as every machine must find it) and the options every
// rank loads with, and the NCCL id for GPU ranks.
std::vector<uint8_t> launch_message(const std::filesystem::path& model_dir, const OpenOptions& o,
                                    const std::string& nccl_id) {
  Writer w(Op::launch);
  w.str(model_dir.string());
  w.u8(static_cast<uint8_t>(o.device));
  w.u8(static_cast<uint8_t>(o.attention));
  w.i64(o.context);
  w.i64(o.sequences);
  w.u8(o.cuda_graphs ? 1 : 0);  // every rank records its decode steps, or none (their collectives pair)
  w.str(nccl_id);
  return w.bytes();
}

// Whether this rank's GPU exists, checked before NCCL starts (NCCL would wait for a rank that
// cannot join).
Result<void> check_rank_device(Device device, int gpu, int rank) {
  if (device == Device::cpu) return {};
#ifdef DSA_WITH_CUDA
  const int index = gpu >= 0 ? gpu : rank, visible = cuda_device_count();
  if (index >= visible)
    return make_error("GPU " + std::to_string(index) + " is not there (" + std::to_string(visible) + " visible)");
  return {};
#else
  (void)gpu;
  (void)rank;
  return make_error("--device cuda: this dsagent was built without CUDA");
#endif
}

// The Comm of one rank: over the sockets on the CPU, NCCL (its id from rank 0) on GPUs.
Result<std::unique_ptr<Comm>> rank_comm(SocketGroup& group, Device device, const std::string& nccl_id, int gpu) {
  if (device == Device::cpu) return make_socket_comm(group);
#ifdef DSA_WITH_NCCL
  NcclId id;
  DSA_CHECK(nccl_id.size() == id.bytes.size(), "an NCCL id travels with GPU ranks");
  std::memcpy(id.bytes.data(), nccl_id.data(), id.bytes.size());
  return make_nccl_comm(id, group.rank(), group.size(), gpu >= 0 ? gpu : group.rank());
#else
  (void)nccl_id;
  (void)gpu;
  return make_error("GPU ranks in separate processes need a dsagent built with NCCL");
#endif
}

}  // namespace

Result<std::unique_ptr<ForwardPass>> open_rank_processes(const std::filesystem::path& dir, const OpenOptions& options) {
  const int n_local = options.local_ranks > 0 ? std::min(options.local_ranks, options.ranks) : options.ranks;
  if (n_local < options.ranks && options.rank_address.empty())
    return make_error("--local-ranks " + std::to_string(n_local) + ": ranks on other machines need --rank-address HOST:PORT");
  std::error_code ec;
  std::filesystem::path model_dir = std::filesystem::absolute(dir, ec);
  if (ec) model_dir = dir;
  DSA_TRY(group, SocketGroup::listen(options.ranks, options.rank_address));
  std::string program = options.rank_program;
  if (program.empty()) {
    std::error_code ec;
    program = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) program = "/proc/self/exe";
  }
  DSA_TRY(workers, WorkerProcesses::start(program, *group, n_local, options.device));
  if (options.device == Device::cpu && !std::getenv("DSA_THREADS")) {
    // This process is one of the CPU ranks sharing the cores too.
    cpu::set_num_threads(WorkerProcesses::threads_per_rank(n_local));
  }
  if (n_local < options.ranks) {
    std::fprintf(stderr,
                 "dsagent: waiting for ranks %d..%d at %s: on their machines run `dsagent rank-worker --connect %s "
                 "--token %s --rank R --ranks %d --gpu G` (the model at %s there too)\n",
                 n_local, options.ranks - 1, group->path().c_str(), group->path().c_str(),
                 token_text(group->token()).c_str(), options.ranks, model_dir.string().c_str());
  }
  const auto fail = [&](const Error& e) -> Error {
    workers->kill_all();
    return e;
  };
  const auto alive = [&]() -> Result<void> {
    if (auto ended = workers->ended()) return make_error(*ended + " before joining");
    return {};
  };
  // Ranks started by hand on other machines get half an hour to join.
  if (auto r = group->accept_all(n_local < options.ranks ? 1800.0 : 120.0, alive); !r) return fail(r.error());

  std::string nccl_id;
#ifdef DSA_WITH_NCCL
  if (options.device == Device::cuda) {
    auto id = nccl_unique_id();
    if (!id) return fail(id.error());
    nccl_id.assign(id->bytes.data(), id->bytes.size());
  }
#endif
  const std::vector<uint8_t> launch = launch_message(model_dir, options, nccl_id);
  for (int r = 1; r < group->size(); ++r) {
    if (auto sent = group->send_message(r, launch); !sent) return fail(sent.error());
  }
  // Every rank's device first: NCCL would wait forever for a rank that cannot join.
  const auto statuses = [&](const char* stage) -> Result<void> {
    for (int r = 1; r < group->size(); ++r) {
      auto status = group->recv_message(r);
      if (!status) return status.error();
      if (status->empty() || (*status)[0] != 0) {
        return make_error("rank " + std::to_string(r) + " (" + stage + "): " +
                          std::string(status->begin() + (status->empty() ? 0 : 1), status->end()));
      }
    }
    return {};
  };
  if (auto r = check_rank_device(options.device, options.gpu, 0); !r) return fail(r.error());
  if (auto r = statuses("device"); !r) return fail(r.error());
  workers->watch(*group);  // from here a worker that ends stops this process (NCCL would wait for it)
  auto comm = rank_comm(*group, options.device, nccl_id, options.gpu);
  if (!comm) return fail(comm.error());
  auto local = load_rank(dir, options, comm->get());
  if (!local) return fail(local.error());
  if (auto r = statuses("load"); !r) return fail(r.error());
  return std::unique_ptr<ForwardPass>(std::make_unique<ProcessRanks>(std::move(group), std::move(*comm),
                                                                     std::move(*local), std::move(workers)));
}

Result<void> run_rank_worker(const std::string& address, uint64_t token, int rank, int n_ranks, int gpu) {
  // A rank started by hand may come up before rank 0 listens.
  DSA_TRY(group, SocketGroup::connect(address, token, rank, n_ranks, 60.0));
  DSA_TRY(launch, group->recv_message(0));
  Reader in(launch);
  DSA_CHECK(static_cast<Op>(in.u8()) == Op::launch, "a rank group starts with the launch message");
  const std::filesystem::path dir = in.str();
  OpenOptions options;
  options.device = static_cast<Device>(in.u8());
  options.attention = static_cast<AttentionMode>(in.u8());
  options.context = in.i64();
  options.sequences = in.i64();
  options.cuda_graphs = in.u8() != 0;
  const std::string nccl_id = in.str();
  options.ranks = n_ranks;
  options.gpu = gpu;

  const Result<void> device = check_rank_device(options.device, gpu, rank);
  if (auto sent = group->send_message(0, status_message(device)); !sent) return sent;
  if (!device) return device;  // rank 0 reports it and ends the group
  // Past this point rank 0 may be waiting in NCCL's set-up, not reading: a failure here ends this
  // process, which rank 0's watch notices.
  Result<std::unique_ptr<Comm>> comm = rank_comm(*group, options.device, nccl_id, gpu);
  if (!comm) return comm.error();
  Result<std::unique_ptr<ForwardPass>> model = load_rank(dir, options, comm->get());
  const Result<void> loaded = model ? Result<void>{} : Result<void>(model.error());
  if (auto sent = group->send_message(0, status_message(loaded)); !sent) return sent;
  if (!loaded) {
    // Rank 0 reports the error; wait for it to close the group, so the exit does not race its read.
    uint8_t byte;
    (void)group->recv(0, &byte, 1);
    return loaded;
  }
  // A rank waiting in an NCCL collective would not notice rank 0 going away: watch its connection
  // while serving (a close right after rank 0's last message is that message's to end).
  std::atomic<bool> served{false};
  std::thread watch([&] {
    while (!served.load()) {
      if (group->closed_peer() == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        if (!served.load()) ranks::group_lost("rank 0 went away");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  Result<void> result = serve_rank(*group, **model);
  served.store(true);
  watch.join();
  return result;
}

}  // namespace dsa
