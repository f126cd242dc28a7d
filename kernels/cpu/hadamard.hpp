// The indexer's rotate_activation (model-spec 5.3): a fast Walsh-Hadamard transform in natural
// (Sylvester) order, H[i][j] = (-1)^popcount(i & j), times a scale, with a bf16-rounded output.
#pragma once
#include <cstdint>

namespace dsa::cpu {

// x, y: [rows, n] f32 (y may alias x); n a power of two. y[r] = bf16((x[r] . H_n) * scale), summed
// in fp64 (exact for bf16 inputs), as the reference.
void hadamard(const float* x, int64_t rows, int64_t n, double scale, float* y);

}  // namespace dsa::cpu
