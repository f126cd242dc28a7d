// parallel_for: OpenMP when available, else a persistent std::thread pool (see parallel.hpp).
#include "kernels/cpu/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dsa::cpu {
namespace {

int default_threads() {
  if (const char* env = std::getenv("DSA_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0 && n <= kMaxThreads) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

std::atomic<int> g_threads{0};
thread_local bool t_inside = false;  // nested loops run serially

#ifndef _OPENMP
// Workers sleep on a condition variable between loops; a loop hands out ranges by atomic counter.
class Pool {
 public:
  void run(int n_threads, int64_t n_ranges, const std::function<void(int64_t)>& body);
  ~Pool();

 private:
  void ensure(int n_workers);
  void worker_main(int index, uint64_t seen);
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)>* body_ = nullptr;
  int64_t n_ranges_ = 0;
  std::atomic<int64_t> next_{0};
  int active_ = 0;        // workers still inside the current loop
  uint64_t generation_ = 0;
  int wanted_ = 0;        // workers taking part in the current loop
  bool stop_ = false;
};
#endif

}  // namespace

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    n = default_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : default_threads(), std::memory_order_relaxed); }

namespace detail {

void run_parallel(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_ranges = (n + grain - 1) / grain;
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), max_ranges));
  if (threads <= 1 || t_inside) {
    fn(ctx, 0, n);
    return;
  }
  // A few ranges per thread balance uneven work without much overhead.
  const int64_t n_ranges = std::min<int64_t>(max_ranges, int64_t(threads) * 4);
  const int64_t per = (n + n_ranges - 1) / n_ranges;
  auto range = [&](int64_t r) {
    const int64_t b = r * per, e = std::min(n, b + per);
    if (b < e) fn(ctx, b, e);
  };
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t r = 0; r < n_ranges; ++r) {
    t_inside = true;
    range(r);
    t_inside = false;
  }
#else
  static Pool pool;
  const std::function<void(int64_t)> body = range;
  pool.run(threads, n_ranges, body);
#endif
}

}  // namespace detail

#ifndef _OPENMP
namespace {

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void Pool::ensure(int n_workers) {
  while (static_cast<int>(workers_.size()) < n_workers) {
    const int index = static_cast<int>(workers_.size());
    const uint64_t seen = generation_;  // the loop about to start is new to it
    workers_.emplace_back([this, index, seen] { worker_main(index, seen); });
  }
}

void Pool::run(int n_threads, int64_t n_ranges, const std::function<void(int64_t)>& body) {
  static std::mutex loop_mu;  // one loop at a time from any number of callers
  std::lock_guard<std::mutex> loop_lk(loop_mu);
  {
    std::lock_guard<std::mutex> lk(mu_);
    ensure(n_threads - 1);
    body_ = &body;
    n_ranges_ = n_ranges;
    next_.store(0);
    wanted_ = n_threads - 1;
    active_ = wanted_;
    ++generation_;
  }
  cv_.notify_all();
  t_inside = true;
  for (int64_t r; (r = next_.fetch_add(1)) < n_ranges;) body(r);
  t_inside = false;
  std::unique_lock<std::mutex> lk(mu_);
  done_cv_.wait(lk, [this] { return active_ == 0; });
  body_ = nullptr;
}

void Pool::worker_main(int index, uint64_t seen) {
  t_inside = true;
  for (;;) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    if (index >= wanted_) continue;
    const auto* body = body_;
    const int64_t n_ranges = n_ranges_;
    lk.unlock();
    for (int64_t r; (r = next_.fetch_add(1)) < n_ranges;) (*body)(r);
    lk.lock();
    if (--active_ == 0) done_cv_.notify_one();
  }
}

}  // namespace
#endif

}  // namespace dsa::cpu
