// Comm collectives over in-process thread ranks: sums, gathers and broadcasts are exact and
// identical on every rank, for 1, 2 and 4 ranks, over repeated calls.
#include <doctest/doctest.h>

#include <thread>

#include "engine/dist/comm.hpp"

namespace dsa {
namespace {

// Runs body(comm) on one thread per rank.
template <class F>
void on_ranks(int n, F body) {
  auto comms = make_thread_comms(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { body(*comms[r]); });
  for (auto& t : threads) t.join();
}

TEST_CASE("all_reduce_sum, all_gather and broadcast over thread ranks") {
  for (int n : {1, 2, 4}) {
    std::vector<std::vector<float>> reduced(n), gathered(n), broadcasted(n);
    on_ranks(n, [&](Comm& c) {
      CHECK(c.size() == n);
      for (int round = 0; round < 3; ++round) {  // buffers are reusable call after call
        std::vector<float> x = {float(c.rank() + 1), 0.1f * c.rank(), float(round)};
        c.all_reduce_sum(x.data(), 3);
        reduced[c.rank()] = x;
        std::vector<float> mine = {float(c.rank()), float(10 * c.rank())}, all(2 * n);
        c.all_gather(mine.data(), 2, all.data());
        gathered[c.rank()] = all;
        std::vector<float> b = {float(c.rank() == n - 1 ? 42 : -1)};
        c.broadcast(b.data(), 1, n - 1);
        broadcasted[c.rank()] = b;
      }
    });
    float sum_ranks = 0, sum_tenths = 0;
    for (int r = 0; r < n; ++r) sum_ranks += float(r + 1), sum_tenths += 0.1f * r;
    std::vector<float> want_gather;
    for (int r = 0; r < n; ++r) want_gather.insert(want_gather.end(), {float(r), float(10 * r)});
    for (int r = 0; r < n; ++r) {
      CHECK(reduced[r] == std::vector<float>{sum_ranks, sum_tenths, float(2 * n)});
      CHECK(reduced[r] == reduced[0]);  // bit-identical on every rank
      CHECK(gathered[r] == want_gather);
      CHECK(broadcasted[r] == std::vector<float>{42});
    }
  }
}

TEST_CASE("a single-process Comm is the identity") {
  SingleComm c;
  std::vector<float> x = {1, 2}, out(2);
  c.all_reduce_sum(x.data(), 2);
  c.all_gather(x.data(), 2, out.data());
  c.broadcast(x.data(), 2, 0);
  CHECK(x == std::vector<float>{1, 2});
  CHECK(out == x);
}

}  // namespace
}  // namespace dsa
