// Device-side access to the latent cache records of kernels/cpu/attention.hpp (bf16 and the
// 656-byte fp8 record), shared by the sparse MLA decode kernels and the cache writes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"

namespace dsa::cuda::dev {

constexpr int kLatentPage = int(cpu::kLatentPageTokens);

// Records start 4-byte aligned (the launchers check), so scales and bf16 pairs are read with typed
// loads.
struct Records {
  const uint8_t* arena;
  const int32_t* pages;
  size_t record_bytes;
  int kv_lora, rope;
  bool fp8;

  __device__ uint32_t slot(int32_t pos) const {
    return uint32_t(pages[pos / kLatentPage]) * kLatentPage + uint32_t(pos % kLatentPage);
  }
  __device__ const uint8_t* at(uint32_t slot) const { return arena + size_t(slot) * record_bytes; }
  // Latent value c of a record: code * ue8m0 scale is exact, like the CPU's latent_read.
  __device__ float c_kv(const uint8_t* rec, int c) const {
    if (!fp8) return bf16_to_float(reinterpret_cast<const uint16_t*>(rec)[c]);
    const float scale = reinterpret_cast<const float*>(rec + kv_lora)[c / kQuantBlock];
    return fp8_to_float(rec[c]) * scale;
  }
  // Where a record's k_pe starts (4-byte aligned).
  __device__ int pe_offset() const {
    return fp8 ? kv_lora + (kv_lora / kQuantBlock) * int(sizeof(float)) : 2 * kv_lora;
  }
  __device__ float k_pe(const uint8_t* rec, int i) const {
    return bf16_to_float(reinterpret_cast<const uint16_t*>(rec + pe_offset())[i]);
  }
  // The 8 values of a record from value d0 on (d0 % 8 == 0: all c_kv or all k_pe, as kv_lora % 8 ==
  // 0) as bf16 bits, with 4-byte loads: c_kv()'s and k_pe()'s values, exactly.
  __device__ void bf16x8(const uint8_t* rec, int d0, uint16_t (&v)[8]) const {
    if (fp8 && d0 < kv_lora) {
      const uint32_t* codes = reinterpret_cast<const uint32_t*>(rec + d0);
      const float scale = reinterpret_cast<const float*>(rec + kv_lora)[d0 / kQuantBlock];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const uint32_t w = codes[j];
#pragma unroll
        for (int b = 0; b < 4; ++b) v[4 * j + b] = float_to_bf16(fp8_to_float(uint8_t(w >> (8 * b))) * scale);
      }
      return;
    }
    const uint32_t* words =
        reinterpret_cast<const uint32_t*>(rec + (d0 < kv_lora ? 2 * d0 : pe_offset() + 2 * (d0 - kv_lora)));
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t w = words[j];
      v[2 * j] = uint16_t(w & 0xffffu);
      v[2 * j + 1] = uint16_t(w >> 16);
    }
  }
};

// The sparse attention launchers' common start: the view's contract checked (records 4-byte
// aligned, fp8 records of kv_lora % 128 == 0); true when nothing is left to launch (no query or
// head, or max_sel <= 0: o_lat zeroed).
inline bool sparse_mla_nothing_to_launch(const cpu::LatentCacheView& view, int64_t n_heads, int64_t n_q,
                                         int64_t max_sel, float* o_lat, cudaStream_t stream) {
  const bool fp8 = view.fmt == cpu::LatentFormat::fp8;
  DSA_CUDA_REQUIRE(!fp8 || view.kv_lora % 128 == 0, "sparse_mla_decode: fp8 records need kv_lora % 128 == 0");
  DSA_CUDA_REQUIRE(view.record_bytes == cpu::latent_record_bytes(view.fmt, view.kv_lora, view.rope_dim),
                   "sparse_mla_decode: record_bytes does not match the format");
  if (n_heads <= 0 || n_q <= 0) return true;
  if (max_sel <= 0) {
    DSA_CUDA_CHECK(cudaMemsetAsync(o_lat, 0, size_t(n_q * n_heads * view.kv_lora) * sizeof(float), stream));
    return true;
  }
  DSA_CUDA_REQUIRE(view.record_bytes % 4 == 0 && reinterpret_cast<uintptr_t>(view.arena) % 4 == 0,
                   "sparse_mla_decode: records must start 4-byte aligned");
  return false;
}

}  // namespace dsa::cuda::dev
