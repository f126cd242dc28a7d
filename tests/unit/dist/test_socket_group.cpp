// SocketGroup and the socket Comm, with the ranks on threads (the sockets do not care): the
// collectives give the in-process thread ranks' bits, messages arrive whole and in order, and a
// rank that goes away is an error, not a hang.
#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <utility>
#include <thread>

#include "engine/dist/comm.hpp"
#include "engine/dist/socket_group.hpp"

namespace dsa {
namespace {

// Rank 0 listens (a Unix socket, or TCP at tcp_address); ranks 1..n-1 connect on threads;
// body(group) then runs on every rank.
template <class F>
void on_socket_ranks(int n, F body, const std::string& tcp_address = "") {
  auto root = SocketGroup::listen(n, tcp_address);
  REQUIRE(root.ok());
  std::vector<std::unique_ptr<SocketGroup>> others(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 1; r < n; ++r) {
    threads.emplace_back([&, r] {
      auto g = SocketGroup::connect((*root)->path(), (*root)->token(), r, n);
      REQUIRE(g.ok());
      others[size_t(r)] = std::move(*g);
    });
  }
  REQUIRE((*root)->accept_all(30.0).ok());
  for (auto& t : threads) t.join();
  threads.clear();
  for (int r = 1; r < n; ++r) threads.emplace_back([&, r] { body(*others[size_t(r)]); });
  body(**root);
  for (auto& t : threads) t.join();
}

// The same collectives on a Comm: a sum of random values (rounding depends on the order), a
// gather and a broadcast from the last rank, three times over.
std::vector<float> collectives(Comm& c, int64_t n) {
  std::mt19937 rng(uint32_t(17 + c.rank()));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> out;
  for (int round = 0; round < 3; ++round) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = u(rng) * float(1 << (round * 4));
    c.all_reduce_sum(x.data(), n);
    out.insert(out.end(), x.begin(), x.end());
    std::vector<float> all(static_cast<size_t>(n * c.size()));
    c.all_gather(x.data() + 1, n - 1, all.data());
    out.insert(out.end(), all.begin(), all.begin() + (n - 1) * c.size());
    std::vector<float> b(static_cast<size_t>(n), c.rank() == c.size() - 1 ? 7.5f : -1.0f);
    b[0] = float(c.rank());
    c.broadcast(b.data(), n, c.size() - 1);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

TEST_CASE("socket Comm: the thread ranks' sums, gathers and broadcasts, bit for bit, on every rank") {
  for (const auto& [n, tcp] : {std::pair{2, ""}, std::pair{3, ""}, std::pair{3, "127.0.0.1:0"}}) {
    CAPTURE(n);
    CAPTURE(tcp);
    const int64_t len = 1000;
    std::vector<std::vector<float>> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    auto comms = make_thread_comms(n);
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { want[size_t(r)] = collectives(*comms[size_t(r)], len); });
    for (auto& t : threads) t.join();
    on_socket_ranks(n, [&](SocketGroup& g) {
      auto comm = make_socket_comm(g);
      CHECK(comm->rank() == g.rank());
      CHECK(comm->size() == n);
      got[size_t(g.rank())] = collectives(*comm, len);
    }, tcp);
    for (int r = 0; r < n; ++r) {
      CHECK(got[size_t(r)] == want[size_t(r)]);
      CHECK(got[size_t(r)] == got[0]);
    }
  }
}

TEST_CASE("SocketGroup: messages arrive whole and in order; a rank that goes away is an error") {
  on_socket_ranks(3, [](SocketGroup& g) {
    if (g.rank() == 0) {
      for (int r = 1; r < 3; ++r) {
        std::vector<uint8_t> big(300000 + size_t(r));  // more than a socket buffer holds
        for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7 + size_t(r));
        REQUIRE(g.send_message(r, big).ok());
        REQUIRE(g.send_message(r, {}).ok());
      }
      for (int r = 1; r < 3; ++r) {
        auto back = g.recv_message(r);
        REQUIRE(back.ok());
        CHECK(*back == std::vector<uint8_t>{uint8_t(r), 9});
      }
    } else {
      auto big = g.recv_message(0);
      REQUIRE(big.ok());
      REQUIRE(big->size() == 300000 + size_t(g.rank()));
      bool same = true;
      for (size_t i = 0; i < big->size(); ++i) same = same && (*big)[i] == uint8_t(i * 7 + size_t(g.rank()));
      CHECK(same);
      auto empty = g.recv_message(0);
      REQUIRE(empty.ok());
      CHECK(empty->empty());
      REQUIRE(g.send_message(0, {uint8_t(g.rank()), 9}).ok());
    }
  });

  // A worker that closes its end: rank 0's next receive fails with the rank named.
  auto root = SocketGroup::listen(2);
  REQUIRE(root.ok());
  std::thread worker([&] {
    auto g = SocketGroup::connect((*root)->path(), (*root)->token(), 1, 2);
    REQUIRE(g.ok());
  });  // g closes as the thread ends
  REQUIRE((*root)->accept_all(30.0).ok());
  worker.join();
  float x = 0;
  auto r = (*root)->recv(1, &x, sizeof(x));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("rank 1 is gone") != std::string::npos);
}

TEST_CASE("SocketGroup over TCP: the bound port is in path(); stray connections are ignored") {
  auto root = SocketGroup::listen(2, "127.0.0.1:0");
  REQUIRE(root.ok());
  const std::string path = (*root)->path();
  CHECK(path.rfind("127.0.0.1:", 0) == 0);
  CHECK(path != "127.0.0.1:0");
  // Before the real rank 1, a connection with a wrong token: it is closed and does not take the rank.
  std::unique_ptr<SocketGroup> wrong, worker;
  std::thread strays([&] {
    auto m = SocketGroup::connect(path, (*root)->token() + 1, 1, 2);  // wrong token
    REQUIRE(m.ok());
    wrong = std::move(*m);
    auto w = SocketGroup::connect(path, (*root)->token(), 1, 2);
    REQUIRE(w.ok());
    worker = std::move(*w);
  });
  REQUIRE((*root)->accept_all(30.0).ok());
  strays.join();
  REQUIRE((*root)->send_message(1, {1, 2, 3}).ok());
  auto got = worker->recv_message(0);
  REQUIRE(got.ok());
  CHECK(*got == std::vector<uint8_t>{1, 2, 3});
  CHECK((*root)->closed_peer() == -1);
  worker.reset();  // rank 1's process ends
  for (int i = 0; i < 50 && (*root)->closed_peer() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK((*root)->closed_peer() == 1);
  CHECK_FALSE(SocketGroup::listen(2, "no-port").ok());
  CHECK_FALSE(SocketGroup::connect("127.0.0.1:1", 0, 1, 2).ok());  // nothing listens, no retry
}

TEST_CASE("SocketGroup: joining fails cleanly (the check's error, a timeout, a bad rank)") {
  auto root = SocketGroup::listen(2);
  REQUIRE(root.ok());
  auto stopped = (*root)->accept_all(30.0, [] { return Result<void>(make_error("rank 1 exited before joining")); });
  REQUIRE_FALSE(stopped.ok());
  CHECK(stopped.error().message == "rank 1 exited before joining");
  auto late = (*root)->accept_all(0.3);
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().message.find("did not connect within") != std::string::npos);
  CHECK_FALSE(SocketGroup::connect((*root)->path(), (*root)->token(), 2, 2).ok());
  CHECK_FALSE(SocketGroup::connect("/nonexistent/dsagent.sock", 0, 1, 2).ok());
  CHECK_FALSE(SocketGroup::listen(1).ok());
}

}  // namespace
}  // namespace dsa
