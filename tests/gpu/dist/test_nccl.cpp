// NcclComm against the thread ranks' results: with one rank every collective is the identity (host
// and device buffers, and the stream forms, also captured into a CUDA graph); with two or more GPUs, ranks on threads sum, gather and broadcast like the
// in-process Comm (sums compared within fp32 rounding: NCCL's order is its own).
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "engine/dist/comm.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

#if DSA_WITH_NCCL
#include "engine/dist/nccl_comm.hpp"
#endif

using namespace dsa;

#if DSA_WITH_NCCL

namespace {

std::vector<float> ramp(int64_t n, float base) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = base + 0.25f * float(i % 97) - 3.0f;
  return v;
}

}  // namespace

TEST_CASE("NCCL with one rank: every collective is the identity, on host and device buffers") {
  DSA_REQUIRE_GPU();
  auto id = nccl_unique_id();
  REQUIRE_MESSAGE(id.ok(), (id.ok() ? std::string() : id.error().message));
  auto made = make_nccl_comm(*id, 0, 1, 0);
  REQUIRE_MESSAGE(made.ok(), (made.ok() ? std::string() : made.error().message));
  Comm& comm = **made;
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);

  const int64_t n = 1000;
  const auto x = ramp(n, 1.0f);
  auto host = x;
  comm.all_reduce_sum(host.data(), n);
  CHECK(host == x);
  comm.broadcast(host.data(), n, 0);
  CHECK(host == x);
  std::vector<float> gathered(static_cast<size_t>(n), 0.0f);
  comm.all_gather(x.data(), n, gathered.data());
  CHECK(gathered == x);

  test::DeviceBuffer<float> dev(x), dev_out(static_cast<size_t>(n));
  comm.all_reduce_sum(dev.get(), n);
  CHECK(dev.to_host() == x);
  comm.all_gather(dev.get(), n, dev_out.get());
  CHECK(dev_out.to_host() == x);
  comm.all_reduce_sum(host.data(), 0);  // empty: nothing to do
}

TEST_CASE("NCCL with one rank: the collectives on a stream, launched and captured into a CUDA graph") {
  DSA_REQUIRE_GPU();
  auto id = nccl_unique_id();
  REQUIRE(id.ok());
  auto made = make_nccl_comm(*id, 0, 1, 0);
  REQUIRE_MESSAGE(made.ok(), (made.ok() ? std::string() : made.error().message));
  Comm& comm = **made;
  const int64_t n = 1000;
  const auto x = ramp(n, 2.0f);
  test::DeviceBuffer<float> dev(x), dev_out(static_cast<size_t>(n));
  cudaStream_t stream = nullptr;
  DSA_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  comm.all_reduce_sum_on(dev.get(), n, stream);
  comm.all_gather_on(dev.get(), n, dev_out.get(), stream);
  DSA_CUDA_OK(cudaStreamSynchronize(stream));
  CHECK(dev.to_host() == x);
  CHECK(dev_out.to_host() == x);
  // Captured (as BackendModel's decode steps capture them), then replayed twice.
  test::DeviceBuffer<float> captured_out(static_cast<size_t>(n));
  DSA_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  comm.all_reduce_sum_on(dev.get(), n, stream);
  comm.all_gather_on(dev.get(), n, captured_out.get(), stream);
  cudaGraph_t graph = nullptr;
  DSA_CUDA_OK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  DSA_CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  for (int rep = 0; rep < 2; ++rep) DSA_CUDA_OK(cudaGraphLaunch(exec, stream));
  DSA_CUDA_OK(cudaStreamSynchronize(stream));
  CHECK(captured_out.to_host() == x);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST_CASE("NCCL ranks on threads, one per GPU: sum, gather and broadcast as the thread ranks do") {
  DSA_REQUIRE_GPU();
  int n_gpus = 0;
  DSA_CUDA_OK(cudaGetDeviceCount(&n_gpus));
  if (n_gpus < 2) {
    MESSAGE("one GPU: the multi-rank case needs two or more");
    return;
  }
  std::vector<int> devices;
  for (int d = 0; d < n_gpus; ++d) devices.push_back(d);
  auto made = make_nccl_comms(devices);
  REQUIRE_MESSAGE(made.ok(), (made.ok() ? std::string() : made.error().message));
  auto& comms = *made;
  const int64_t n = 4099;
  std::vector<std::vector<float>> sums(static_cast<size_t>(n_gpus)), gathers(static_cast<size_t>(n_gpus)),
      bcasts(static_cast<size_t>(n_gpus));
  std::vector<std::thread> threads;
  for (int r = 0; r < n_gpus; ++r) {
    threads.emplace_back([&, r] {
      auto mine = ramp(n, float(r));
      sums[size_t(r)] = mine;
      comms[size_t(r)]->all_reduce_sum(sums[size_t(r)].data(), n);
      gathers[size_t(r)].assign(size_t(n) * size_t(n_gpus), 0.0f);
      comms[size_t(r)]->all_gather(mine.data(), n, gathers[size_t(r)].data());
      bcasts[size_t(r)] = mine;
      comms[size_t(r)]->broadcast(bcasts[size_t(r)].data(), n, n_gpus - 1);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < n_gpus; ++r) {
    CHECK(sums[size_t(r)] == sums[0]);  // the same bits on every rank
    for (int64_t i = 0; i < n; ++i) {
      float want = 0.0f;
      for (int k = 0; k < n_gpus; ++k) want += ramp(n, float(k))[size_t(i)];
      REQUIRE(std::fabs(sums[size_t(r)][size_t(i)] - want) <= 1e-5f * (1.0f + std::fabs(want)));
    }
    for (int k = 0; k < n_gpus; ++k) {
      const auto want = ramp(n, float(k));
      CHECK(std::equal(want.begin(), want.end(), gathers[size_t(r)].begin() + k * n));
    }
    CHECK(bcasts[size_t(r)] == ramp(n, float(n_gpus - 1)));
  }
}

#else

TEST_CASE("NCCL: this build has no NCCL communicator") {
  FAIL("built without DSA_NCCL: configure with -DDSA_NCCL=ON (needs DSA_CUDA and NCCL)");
}

#endif
