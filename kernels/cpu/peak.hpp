// The machine's fp32 multiply-add peak as the CPU kernels see it: independent FMA chains on the
// widest vectors the build targets, on every thread. `dsagent bench` reports compute-bound phases
// (prefill's linears, the indexer's scores at long contexts) as a share of it, as it reports
// memory-bound ones against the measured bandwidth.
#pragma once

namespace dsa::cpu {

// FLOP/s (a multiply-add counts two) of the best of `passes` runs of about `seconds` each over
// num_threads() threads.
double measure_fma_peak(double seconds = 0.05, int passes = 3);

}  // namespace dsa::cpu
