// SocketGroup and the socket Comm (see socket_group.hpp).
#include "engine/dist/socket_group.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

namespace dsa {
namespace {

std::string errno_text() { return std::strerror(errno); }

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return make_error("rank socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// "HOST:PORT" split at the last colon ("[::1]:5000" allowed); an error for anything else.
Result<std::pair<std::string, std::string>> host_port(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return make_error("rank address '" + address + "': expected HOST:PORT");
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::make_pair(host, address.substr(colon + 1));
}

// The addresses of hp = host_port(address), for listening (passive) or connecting.
Result<addrinfo*> resolve(const std::pair<std::string, std::string>& hp, const std::string& address, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(hp.first.c_str(), hp.second.c_str(), &hints, &found); rc != 0)
    return make_error("rank address '" + address + "': " + ::gai_strerror(rc));
  return found;
}

Result<addrinfo*> resolve(const std::string& address, bool passive) {
  DSA_TRY(hp, host_port(address));
  return resolve(hp, address, passive);
}

// Per-step messages are small: send them at once.
void no_delay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool is_tcp(const std::string& path) { return !path.empty() && path.front() != '/'; }

}  // namespace

Result<std::unique_ptr<SocketGroup>> SocketGroup::listen(int n_ranks, const std::string& tcp_address) {
  if (n_ranks < 2) return make_error("a process group needs at least two ranks");
  std::unique_ptr<SocketGroup> g(new SocketGroup(0, n_ranks));
  std::random_device entropy;
  g->token_ = (uint64_t(entropy()) << 32) ^ uint64_t(entropy());
  if (!tcp_address.empty()) {
    DSA_TRY(hp, host_port(tcp_address));
    DSA_TRY(found, resolve(hp, tcp_address, true));
    std::string last = "no address";
    for (addrinfo* a = found; a; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, n_ranks) == 0) {
        g->fds_[0] = fd;
        break;
      }
      last = errno_text();
      ::close(fd);
    }
    ::freeaddrinfo(found);
    if (g->fds_[0] < 0) return make_error("cannot listen on " + tcp_address + ": " + last);
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(g->fds_[0], reinterpret_cast<sockaddr*>(&bound), &len);
    const int port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                                 : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    std::string host = hp.first;
    if (host == "0.0.0.0" || host == "::" || host == "*") {  // every interface: name this machine
      char name[256] = {};
      if (::gethostname(name, sizeof(name) - 1) == 0 && name[0]) host = name;
    }
    g->path_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    return g;
  }
  const char* tmp = std::getenv("TMPDIR");
  std::error_code ec;
  const std::filesystem::path base = std::filesystem::absolute(tmp && *tmp ? tmp : "/tmp", ec);
  std::string templ = (ec ? std::string("/tmp") : base.string()) + "/dsagent-ranks-XXXXXX";
  if (!::mkdtemp(templ.data())) return make_error("cannot create a directory for the rank socket: " + errno_text());
  g->dir_ = templ;
  g->path_ = templ + "/rank0.sock";
  DSA_TRY(addr, socket_address(g->path_));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("cannot open the rank socket: " + errno_text());
  g->fds_[0] = fd;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, n_ranks) != 0)
    return make_error("cannot listen on " + g->path_ + ": " + errno_text());
  return g;
}

Result<void> SocketGroup::accept_all(double timeout_s, const std::function<Result<void>()>& check) {
  DSA_CHECK(rank_ == 0, "only rank 0 accepts");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (int joined = 1; joined < n_ranks_;) {
    if (check) {
      if (auto r = check(); !r) return r.error();
    }
    if (std::chrono::steady_clock::now() > deadline)
      return make_error("ranks did not connect within " + std::to_string(int(timeout_s)) + " s (" +
                        std::to_string(joined - 1) + " of " + std::to_string(n_ranks_ - 1) + " did)");
    pollfd p{fds_[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) return make_error("waiting for ranks: " + errno_text());
    if (ready <= 0) continue;
    const int fd = ::accept4(fds_[0], nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (is_tcp(path_)) no_delay(fd);
    // The handshake: the rank and the group's token, within 5 s. Anything else (a port scanner, a
    // stale worker of another group) is closed and ignored.
    Hello hello{};
    size_t got = 0;
    const auto hello_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (got < sizeof(hello) && std::chrono::steady_clock::now() < hello_deadline) {
      pollfd q{fd, POLLIN, 0};
      if (::poll(&q, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd, reinterpret_cast<char*>(&hello) + got, sizeof(hello) - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += size_t(n);
    }
    if (got != sizeof(hello) || hello.token != token_ || hello.rank < 1 || hello.rank >= n_ranks_) {
      ::close(fd);
      continue;
    }
    if (fds_[size_t(hello.rank)] >= 0) {
      ::close(fd);
      return make_error("rank " + std::to_string(hello.rank) + " joined twice");
    }
    fds_[size_t(hello.rank)] = fd;
    ++joined;
  }
  // Everyone is in: the socket's name is no longer needed (and a process that stops abruptly
  // leaves nothing behind).
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
  dir_.clear();
  return {};
}

Result<std::unique_ptr<SocketGroup>> SocketGroup::connect(const std::string& path, uint64_t token, int rank,
                                                         int n_ranks, double retry_s) {
  if (rank < 1 || rank >= n_ranks) return make_error("rank " + std::to_string(rank) + " is not in 1.." +
                                                     std::to_string(n_ranks - 1));
  std::unique_ptr<SocketGroup> g(new SocketGroup(rank, n_ranks));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(retry_s);
  // One attempt: the connected socket, or -1 with the reason in `why`.
  std::string why;
  const auto attempt = [&]() -> int {
    if (!is_tcp(path)) {
      auto addr = socket_address(path);
      if (!addr) {
        why = addr.error().message;
        return -1;
      }
      const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) == 0) return fd;
      why = errno_text();
      if (fd >= 0) ::close(fd);
      return -1;
    }
    auto found = resolve(path, false);
    if (!found) {
      why = found.error().message;
      return -1;
    }
    int fd = -1;
    for (addrinfo* a = *found; a && fd < 0; a = a->ai_next) {
      fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        why = errno_text();
        ::close(fd);
        fd = -1;
      }
    }
    ::freeaddrinfo(*found);
    if (fd >= 0) no_delay(fd);
    return fd;
  };
  int fd = attempt();
  while (fd < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    fd = attempt();
  }
  if (fd < 0) return make_error("cannot connect to rank 0 at " + path + ": " + why);
  g->fds_[0] = fd;
  g->token_ = token;
  const Hello hello{rank, 0, token};
  if (auto sent = g->send(0, &hello, sizeof(hello)); !sent) return sent.error();
  return g;
}

SocketGroup::~SocketGroup() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

int SocketGroup::fd_of(int peer) const {
  DSA_CHECK(peer >= 0 && peer < n_ranks_ && peer != rank_ && (rank_ == 0 || peer == 0),
            "a rank talks to rank 0, rank 0 to every rank");
  return fds_[size_t(peer)];
}

Result<void> SocketGroup::send(int peer, const void* data, size_t bytes) {
  const int fd = fd_of(peer);
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("rank " + std::to_string(peer) + " is gone (" + errno_text() + ")");
    p += n;
    bytes -= size_t(n);
  }
  return {};
}

Result<void> SocketGroup::recv(int peer, void* data, size_t bytes) {
  const int fd = fd_of(peer);
  auto* p = static_cast<char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::recv(fd, p, bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return make_error("rank " + std::to_string(peer) + " is gone (connection closed)");
    if (n < 0) return make_error("rank " + std::to_string(peer) + " is gone (" + errno_text() + ")");
    p += n;
    bytes -= size_t(n);
  }
  return {};
}

int SocketGroup::closed_peer() const {
  std::vector<pollfd> polls;
  std::vector<int> peers;
  for (int r = 0; r < n_ranks_; ++r) {
    if (r == rank_ || fds_[size_t(r)] < 0 || (rank_ != 0 && r != 0)) continue;
    polls.push_back(pollfd{fds_[size_t(r)], POLLRDHUP, 0});
    peers.push_back(r);
  }
  if (polls.empty() || ::poll(polls.data(), polls.size(), 0) <= 0) return -1;
  for (size_t i = 0; i < polls.size(); ++i) {
    if (!(polls[i].revents & (POLLRDHUP | POLLHUP | POLLERR))) continue;
    int unread = 0;  // a peer that sent its last message and closed is not gone until that is read
    if (::ioctl(polls[i].fd, FIONREAD, &unread) == 0 && unread > 0) continue;
    return peers[i];
  }
  return -1;
}

Result<void> SocketGroup::send_message(int peer, const std::vector<uint8_t>& message) {
  const uint64_t n = message.size();
  if (auto r = send(peer, &n, sizeof(n)); !r) return r;
  return send(peer, message.data(), message.size());
}

Result<std::vector<uint8_t>> SocketGroup::recv_message(int peer) {
  uint64_t n = 0;
  if (auto r = recv(peer, &n, sizeof(n)); !r) return r.error();
  if (n > kMaxMessage) return make_error("rank " + std::to_string(peer) + " sent a message of " + std::to_string(n) + " bytes");
  std::vector<uint8_t> message(n);
  if (auto r = recv(peer, message.data(), n); !r) return r.error();
  return message;
}

namespace {

class SocketComm final : public Comm {
 public:
  explicit SocketComm(SocketGroup& g) : g_(g) {}
  int rank() const override { return g_.rank(); }
  int size() const override { return g_.size(); }

  void all_reduce_sum(float* data, int64_t n) override {
    const size_t bytes = size_t(n) * sizeof(float);
    if (rank() != 0) {
      must(g_.send(0, data, bytes));
      must(g_.recv(0, data, bytes));
      return;
    }
    // data already holds rank 0's part; add the others in rank order, as the thread ranks do.
    part_.resize(size_t(n));
    for (int r = 1; r < size(); ++r) {
      must(g_.recv(r, part_.data(), bytes));
      for (int64_t i = 0; i < n; ++i) data[i] += part_[size_t(i)];
    }
    for (int r = 1; r < size(); ++r) must(g_.send(r, data, bytes));
  }

  void all_gather(const float* in, int64_t n, float* out) override {
    const size_t bytes = size_t(n) * sizeof(float);
    if (rank() != 0) {
      must(g_.send(0, in, bytes));
      must(g_.recv(0, out, bytes * size_t(size())));
      return;
    }
    std::memcpy(out, in, bytes);
    for (int r = 1; r < size(); ++r) must(g_.recv(r, out + r * n, bytes));
    for (int r = 1; r < size(); ++r) must(g_.send(r, out, bytes * size_t(size())));
  }

  void broadcast(float* data, int64_t n, int root) override {
    DSA_CHECK(root >= 0 && root < size(), "broadcast root out of range");
    const size_t bytes = size_t(n) * sizeof(float);
    if (rank() != 0) {
      if (rank() == root) {
        must(g_.send(0, data, bytes));
      } else {
        must(g_.recv(0, data, bytes));
      }
      return;
    }
    if (root != 0) must(g_.recv(root, data, bytes));
    for (int r = 1; r < size(); ++r)
      if (r != root) must(g_.send(r, data, bytes));
  }

 private:
  void must(const Result<void>& r) const {
    if (r) return;
    std::fprintf(stderr, "dsagent: rank %d: %s; the rank group cannot go on\n", rank(), r.error().message.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }

  SocketGroup& g_;
  std::vector<float> part_;
};

}  // namespace

std::unique_ptr<Comm> make_socket_comm(SocketGroup& group) { return std::make_unique<SocketComm>(group); }

}  // namespace dsa
