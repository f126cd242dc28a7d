// Comm over NCCL (architecture.md "Scaling out"): one rank per GPU, either several ranks in one
// process (make_nccl_comms, each Comm then used from its own thread) or one process per rank
// (make_nccl_comm, with the NcclId rank 0 created and sent to the others out of band).
//
// Collectives take host or device pointers: a device pointer goes to NCCL as it is, a host buffer
// is staged through a device buffer on the rank's GPU. Each call returns when the data is in
// place; the *_on forms (device pointers) are enqueued on the caller's stream and return at once. Unlike the thread ranks, the all-reduce sums in NCCL's order, not rank order; every rank
// still gets the same bits, so a top-k computed from the result agrees on all ranks.
//
// Built only with DSA_NCCL (DSA_WITH_NCCL is then defined); a failing collective is fatal
// (DSA_CHECK with NCCL's message), a failing set-up is an error.
#pragma once
#include <array>
#include <memory>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/dist/comm.hpp"

namespace dsa {

struct NcclId {
  std::array<char, 128> bytes{};  // ncclUniqueId
};

// A new id for a group of processes (call once, on rank 0).
Result<NcclId> nccl_unique_id();

// This process's rank of an n_ranks group on GPU `device`; every rank calls it with the same id.
Result<std::unique_ptr<Comm>> make_nccl_comm(const NcclId& id, int rank, int n_ranks, int device);

// One rank per listed GPU in this process: element r is rank r, on devices[r].
Result<std::vector<std::unique_ptr<Comm>>> make_nccl_comms(const std::vector<int>& devices);

}  // namespace dsa
