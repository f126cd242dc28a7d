// NCCL communicator (see nccl_comm.hpp).
#include "engine/dist/nccl_comm.hpp"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <string>

namespace dsa {

namespace {

// A failing collective breaks the run's invariant (every rank in step): fatal, with the library's message.
void nccl_ok(ncclResult_t r, const char* call, int line) {
  if (r != ncclSuccess) check_failed(call, __FILE__, line, ncclGetErrorString(r));
}
void cuda_ok(cudaError_t e, const char* call, int line) {
  if (e != cudaSuccess) check_failed(call, __FILE__, line, cudaGetErrorString(e));
}
#define DSA_NCCL_FATAL(call) nccl_ok((call), #call, __LINE__)
#define DSA_CUDA_FATAL(call) cuda_ok((call), #call, __LINE__)

bool on_device(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();  // a plain host pointer on older runtimes: clear the sticky error
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

class NcclComm final : public Comm {
 public:
  NcclComm(ncclComm_t comm, int rank, int size, int device, cudaStream_t stream)
      : comm_(comm), rank_(rank), size_(size), device_(device), stream_(stream) {}
  ~NcclComm() override {
    cudaSetDevice(device_);
    if (staging_) cudaFree(staging_);
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* data, int64_t n) override {
    if (n <= 0) return;
    float* buf = stage(data, n);
    DSA_NCCL_FATAL(ncclAllReduce(buf, buf, size_t(n), ncclFloat32, ncclSum, comm_, stream_));
    finish(buf, data, n);
  }

  void all_gather(const float* in, int64_t n, float* out) override {
    if (n <= 0) return;
    const bool device = on_device(in) && on_device(out);
    cudaSetDevice(device_);
    if (device) {
      DSA_NCCL_FATAL(ncclAllGather(in, out, size_t(n), ncclFloat32, comm_, stream_));
      DSA_CUDA_FATAL(cudaStreamSynchronize(stream_));
      return;
    }
    float* buf = staging(n + int64_t(size_) * n);
    DSA_CUDA_FATAL(cudaMemcpyAsync(buf, in, size_t(n) * sizeof(float), cudaMemcpyDefault, stream_));
    DSA_NCCL_FATAL(ncclAllGather(buf, buf + n, size_t(n), ncclFloat32, comm_, stream_));
    DSA_CUDA_FATAL(cudaMemcpyAsync(out, buf + n, size_t(size_) * size_t(n) * sizeof(float), cudaMemcpyDefault, stream_));
    DSA_CUDA_FATAL(cudaStreamSynchronize(stream_));
  }

  void all_reduce_sum_on(float* data, int64_t n, void* stream) override {
    if (!stream) return all_reduce_sum(data, n);
    if (n <= 0) return;
    cudaSetDevice(device_);
    DSA_NCCL_FATAL(ncclAllReduce(data, data, size_t(n), ncclFloat32, ncclSum, comm_, cudaStream_t(stream)));
  }

  void all_gather_on(const float* in, int64_t n, float* out, void* stream) override {
    if (!stream) return all_gather(in, n, out);
    if (n <= 0) return;
    cudaSetDevice(device_);
    DSA_NCCL_FATAL(ncclAllGather(in, out, size_t(n), ncclFloat32, comm_, cudaStream_t(stream)));
  }

  void broadcast(float* data, int64_t n, int root) override {
    DSA_CHECK(root >= 0 && root < size_, "broadcast root out of range");
    if (n <= 0) return;
    float* buf = stage(data, n);
    DSA_NCCL_FATAL(ncclBroadcast(buf, buf, size_t(n), ncclFloat32, root, comm_, stream_));
    finish(buf, data, n);
  }

 private:
  // The device buffer a collective on data[n] runs in place on: data itself when it is on the
  // device, else the staging buffer holding a copy of it.
  float* stage(float* data, int64_t n) {
    cudaSetDevice(device_);
    if (on_device(data)) return data;
    float* buf = staging(n);
    DSA_CUDA_FATAL(cudaMemcpyAsync(buf, data, size_t(n) * sizeof(float), cudaMemcpyHostToDevice, stream_));
    return buf;
  }

  // Copies a staged result back and waits for the collective.
  void finish(const float* buf, float* data, int64_t n) {
    if (buf != data)
      DSA_CUDA_FATAL(cudaMemcpyAsync(data, buf, size_t(n) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    DSA_CUDA_FATAL(cudaStreamSynchronize(stream_));
  }

  float* staging(int64_t floats) {
    if (floats > staging_floats_) {
      if (staging_) DSA_CUDA_FATAL(cudaFree(staging_));
      staging_ = nullptr;
      DSA_CUDA_FATAL(cudaMalloc(reinterpret_cast<void**>(&staging_), size_t(floats) * sizeof(float)));
      staging_floats_ = floats;
    }
    return staging_;
  }

  ncclComm_t comm_;
  int rank_, size_, device_;
  cudaStream_t stream_;
  float* staging_ = nullptr;
  int64_t staging_floats_ = 0;
};

Result<cudaStream_t> new_stream(int device) {
  if (const cudaError_t e = cudaSetDevice(device); e != cudaSuccess)
    return make_error("NCCL: GPU " + std::to_string(device) + ": " + cudaGetErrorString(e));
  cudaStream_t s = nullptr;
  if (const cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); e != cudaSuccess)
    return make_error("NCCL: GPU " + std::to_string(device) + ": " + cudaGetErrorString(e));
  return s;
}

}  // namespace

Result<NcclId> nccl_unique_id() {
  static_assert(sizeof(ncclUniqueId) == sizeof(NcclId::bytes), "NcclId holds an ncclUniqueId");
  ncclUniqueId raw;
  if (const ncclResult_t r = ncclGetUniqueId(&raw); r != ncclSuccess)
    return make_error(std::string("NCCL: cannot create a group id: ") + ncclGetErrorString(r));
  NcclId id;
  std::memcpy(id.bytes.data(), &raw, sizeof raw);
  return id;
}

Result<std::unique_ptr<Comm>> make_nccl_comm(const NcclId& id, int rank, int n_ranks, int device) {
  if (n_ranks < 1 || rank < 0 || rank >= n_ranks)
    return make_error("NCCL: rank " + std::to_string(rank) + " of " + std::to_string(n_ranks) + " is out of range");
  DSA_TRY(stream, new_stream(device));
  ncclUniqueId raw;
  std::memcpy(&raw, id.bytes.data(), sizeof raw);
  ncclComm_t comm = nullptr;
  if (const ncclResult_t r = ncclCommInitRank(&comm, n_ranks, raw, rank); r != ncclSuccess) {
    cudaStreamDestroy(stream);
    return make_error("NCCL: rank " + std::to_string(rank) + " of " + std::to_string(n_ranks) + " on GPU " +
                      std::to_string(device) + ": " + ncclGetErrorString(r));
  }
  return std::unique_ptr<Comm>(std::make_unique<NcclComm>(comm, rank, n_ranks, device, stream));
}

Result<std::vector<std::unique_ptr<Comm>>> make_nccl_comms(const std::vector<int>& devices) {
  const int n = int(devices.size());
  if (n < 1) return make_error("NCCL: no GPUs given");
  std::vector<ncclComm_t> comms(size_t(n), nullptr);
  if (const ncclResult_t r = ncclCommInitAll(comms.data(), n, devices.data()); r != ncclSuccess)
    return make_error(std::string("NCCL: cannot set up ") + std::to_string(n) + " ranks: " + ncclGetErrorString(r));
  std::vector<std::unique_ptr<Comm>> out;
  for (int r = 0; r < n; ++r) {
    auto stream = new_stream(devices[size_t(r)]);
    if (!stream.ok()) {
      for (int k = r; k < n; ++k) ncclCommDestroy(comms[size_t(k)]);
      return stream.error();
    }
    out.push_back(std::make_unique<NcclComm>(comms[size_t(r)], r, n, devices[size_t(r)], *stream));
  }
  return out;
}

}  // namespace dsa
