// The machine's multiply-add peaks as the CPU kernels see them: independent chains on the widest
// vectors the build targets, on every thread. `dsagent bench` reports compute-bound phases
// (prefill's linears, the indexer's scores at long contexts) as a share of them, as it reports
// memory-bound ones against the measured bandwidth.
#pragma once

namespace dsa::cpu {

// fp32 FMA: FLOP/s (a multiply-add counts two) of the best of `passes` runs of about `seconds`
// each over num_threads() threads.
double measure_fma_peak(double seconds = 0.05, int passes = 3);

// The same for bf16 pair dot products (AVX512_BF16), the limit of the FP8 products (the FP8 linears
// and the indexer's scores) where the build multiplies them in bf16 pairs
// (fp8_products_use_bf16_dot()); 0 where it does not.
double measure_bf16_dot_peak(double seconds = 0.05, int passes = 3);
bool fp8_products_use_bf16_dot();

}  // namespace dsa::cpu
