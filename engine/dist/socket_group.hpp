// SocketGroup: ranks in separate processes, each joined to rank 0 by a stream socket (a star): a
// Unix-domain socket on one machine, or TCP (HOST:PORT) for ranks on other machines. It carries a
// process group's set-up and control messages
// (engine/model/rank_processes.hpp) and, through make_socket_comm, the collectives of CPU ranks in
// separate processes. One thread per process uses it at a time; messages between two ranks arrive
// in the order they were sent.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/dist/comm.hpp"

namespace dsa {

class SocketGroup {
 public:
  // Rank 0 of n_ranks: listens on a socket in a new private directory, or, with tcp_address
  // "HOST:PORT", on that TCP address (PORT 0: one the system picks). path() is what the other ranks
  // connect to: the socket's path, or HOST:PORT with the port bound.
  static Result<std::unique_ptr<SocketGroup>> listen(int n_ranks, const std::string& tcp_address = "");
  // Rank 0: waits until ranks 1..n-1 have connected (each names its rank and the group's token
  // first; a connection that does not within 5 s is closed and ignored), then removes the socket's
  // directory. `check` runs about every 100 ms; its error (say, a rank's process exited) stops the
  // wait, as do timeout_s and a rank joining twice.
  Result<void> accept_all(double timeout_s, const std::function<Result<void>()>& check = {});
  // Rank `rank` (1..n_ranks-1): connects to rank 0 at path (a socket path, or HOST:PORT) with rank
  // 0's token(), retrying for up to retry_s seconds while nothing listens there yet.
  static Result<std::unique_ptr<SocketGroup>> connect(const std::string& path, uint64_t token, int rank,
                                                      int n_ranks, double retry_s = 0.0);

  ~SocketGroup();  // closes the sockets; rank 0 removes the socket and its directory
  SocketGroup(const SocketGroup&) = delete;
  SocketGroup& operator=(const SocketGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return n_ranks_; }
  const std::string& path() const { return path_; }
  // A random number rank 0 draws; the other ranks present it when they join (so that a stray
  // connection to a TCP port cannot take a rank's place).
  uint64_t token() const { return token_; }
  // A peer (for rank 0 any rank, for the others rank 0) whose end of the connection has closed (its
  // process ended) with nothing left to read, or -1. Does not read; safe while another thread uses
  // the sockets.
  int closed_peer() const;

  // Exactly `bytes` bytes to or from `peer`: rank 0 talks to any rank, the others only to rank 0.
  // An error when the peer has closed its end (its process ended) or the socket fails.
  Result<void> send(int peer, const void* data, size_t bytes);
  Result<void> recv(int peer, void* data, size_t bytes);
  // A message of any length: its size, then its bytes.
  Result<void> send_message(int peer, const std::vector<uint8_t>& message);
  Result<std::vector<uint8_t>> recv_message(int peer);

 private:
  SocketGroup(int rank, int n_ranks) : rank_(rank), n_ranks_(n_ranks), fds_(size_t(n_ranks), -1) {}
  int fd_of(int peer) const;

  struct Hello {  // what a rank sends first
    int32_t rank, pad;
    uint64_t token;
  };
  static constexpr uint64_t kMaxMessage = uint64_t(1) << 30;

  int rank_, n_ranks_;
  uint64_t token_ = 0;
  std::vector<int> fds_;  // rank 0: [peer] connection (the listening socket at [0]); rank r: [0]
  std::string path_, dir_;
};

// The Comm of CPU ranks in separate processes, over their SocketGroup: rank 0 receives every
// rank's data, reduces or gathers it in rank order (the bits of the in-process thread ranks) and
// sends the result back. A lost peer cannot be reported through a collective, and the group cannot
// go on without it: the process stops (exit 1) with one line naming the rank. The group must
// outlive the Comm.
std::unique_ptr<Comm> make_socket_comm(SocketGroup& group);

}  // namespace dsa
