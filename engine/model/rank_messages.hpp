// Internal to the rank processes (rank_processes.cpp, rank_launch.cpp, worker_processes.cpp): the
// messages rank 0 and the workers exchange, and how a process leaves a group it cannot go on with.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/runtime/kv_cache.hpp"

namespace dsa::ranks {

// What rank 0 sends: at the start the launch (the model and options), then before each call one
// message holding the op and its fields.
enum class Op : uint8_t { make_cache = 1, drop_cache, forward, decode_batch, copy_prefix, stop, launch };

class Writer {
 public:
  explicit Writer(Op op) { u8(static_cast<uint8_t>(op)); }
  void u8(uint8_t v) { bytes_.push_back(v); }
  void i64(int64_t v) { raw(&v, sizeof(v)); }
  void raw(const void* p, size_t n) {
    const size_t at = bytes_.size();
    bytes_.resize(at + n);
    if (n) std::memcpy(bytes_.data() + at, p, n);
  }
  void str(const std::string& s) {
    i64(int64_t(s.size()));
    raw(s.data(), s.size());
  }
  void ids(std::span<const int32_t> v) {
    i64(int64_t(v.size()));
    raw(v.data(), v.size() * sizeof(int32_t));
  }
  void seq(const Sequence& s) {
    i64(s.n_cached);
    ids(s.pages);
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Reads what Writer wrote; a short message is a broken invariant (both ends are this program).
class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& b) : b_(b) {}
  uint8_t u8() { return *take(1); }
  int64_t i64() {
    int64_t v;
    std::memcpy(&v, take(sizeof(v)), sizeof(v));
    return v;
  }
  std::string str() {
    const auto n = size_t(i64());
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  std::vector<int32_t> ids() {
    const auto n = size_t(i64());
    std::vector<int32_t> v(n);
    if (n) std::memcpy(v.data(), take(n * sizeof(int32_t)), n * sizeof(int32_t));
    return v;
  }
  Sequence seq() {
    Sequence s;
    s.n_cached = i64();
    s.pages = ids();
    return s;
  }

 private:
  const uint8_t* take(size_t n) {
    DSA_CHECK(n <= b_.size() - pos_, "a rank message ended early");
    const uint8_t* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
};

// A worker's reply at each stage of the start-up: ok, or its error.
inline std::vector<uint8_t> status_message(const Result<void>& r) {
  const std::string text = r ? std::string() : r.error().message;
  std::vector<uint8_t> m(1 + text.size());
  m[0] = r ? 0 : 1;
  std::memcpy(m.data() + 1, text.data(), text.size());
  return m;
}

// The group's token as the rank-worker command line takes it: 16 hex digits.
inline std::string token_text(uint64_t token) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(token));
  return text;
}

// Stops this process with one line: a group missing a rank cannot compute (NCCL would wait for it).
[[noreturn]] inline void group_lost(const std::string& why) {
  std::fflush(stdout);  // what was printed so far stays printed
  std::fprintf(stderr, "dsagent: %s; the rank group cannot go on\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace dsa::ranks
