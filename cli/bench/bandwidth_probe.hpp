// The machine's read bandwidth as `dsagent bench` measures it: a dot product of two large fp32
// arrays on all threads (the probe performance.md names), best of several passes.
#pragma once
#include <cstdint>

namespace dsa::cli {

// Bytes/s read; each array holds array_bytes.
double measure_read_bandwidth(int64_t array_bytes, int passes = 5);

}  // namespace dsa::cli
