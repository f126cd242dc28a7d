// FP8 block-scaled weights as stored in DeepSeek checkpoints: a F8_E4M3 weight W [n, k] and its
// F32 companion `weight_scale_inv` [ceil(n/128), ceil(k/128)]; the real value of W[i][j] is
// e4m3(W[i][j]) * scale_inv[i / 128][j / 128]. Partial last blocks (e.g. 576 rows -> 5 scale rows)
// are allowed. This file checks and dequantises pairs; it does not bind weights to the model.
#pragma once
#include <cstdint>

#include "engine/api/result.hpp"
#include "engine/loader/safetensors.hpp"

namespace dsa {

inline constexpr int64_t fp8_block = 128;  // the checkpoints' weight_block_size, both dimensions

// w: F8_E4M3 [n, k]; scale_inv: F32 [ceil(n/block), ceil(k/block)]. The error names both tensors
// with the expected and the actual dtype and shape.
Result<void> check_fp8_pair(const TensorInfo& w, const TensorInfo& scale_inv, int64_t block = fp8_block);

// Rows [row0, row0 + nrows) of W as floats into out [nrows, k] (row-major). The pair must have
// passed check_fp8_pair with the default block.
void dequant_fp8_rows(const TensorInfo& w, const TensorInfo& scale_inv, int64_t row0, int64_t nrows, float* out);

// How many scales are not exact powers of two (the checkpoints declare scale_fmt "ue8m0"). A report
// for inspection, not an error. scale_inv: F32.
int64_t count_non_pow2_scales(const TensorInfo& scale_inv);
// How many scales no weight can be dequantised by: NaN, infinite, zero or negative (the model's
// output turns to NaN). A problem of the checkpoint. scale_inv: F32.
int64_t count_unusable_scales(const TensorInfo& scale_inv);

}  // namespace dsa
