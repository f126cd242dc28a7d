// `dsagent bench --concurrency N`: aggregate decode tokens/s of N concurrent requests through the
// BatchScheduler, the way `dsagent batch --workers N` drives the local engine, against one request
// on the same scheduler (performance.md's batching target).
//
// Each request is a short prompt of random ids (the decode steps dominate) decoding `tokens` ids
// with EOS masked, so none stops early. The rate counts the ids sampled while all of them were
// decoding (from the last request's first id to the first request's last id) over that time, so
// the prompts' prefills are not in it. A warm-up run grows the workspaces first.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/model/open_model.hpp"

namespace dsa::cli {

struct ConcurrentDecode {
  int64_t batch = 0;
  int64_t prompt_tokens = 0;   // each request's prompt: decoding starts at this position
  int64_t tokens_decoded = 0;  // ids decoded after each first id, all requests together
  bool steady = false;          // the window is the steady state (else the whole span)
  int64_t tokens = 0;           // ids sampled in the window
  double seconds = 0;           // the window's length
  double tokens_per_s = 0;     // all requests together
};

// Loads the model in DIR into one scheduler and measures one request, then `batch` at once.
Result<std::vector<ConcurrentDecode>> measure_concurrent_decode(const std::filesystem::path& dir, AttentionMode mode,
                                                                int64_t batch, int64_t tokens,
                                                                Device device = Device::cpu);

}  // namespace dsa::cli
