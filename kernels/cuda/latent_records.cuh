// Device-side access to the latent cache records of kernels/cpu/attention.hpp (bf16 and the
// 656-byte fp8 record), shared by the sparse MLA decode kernels and the cache writes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention.hpp"
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
  __device__ float k_pe(const uint8_t* rec, int i) const {
    const uint8_t* pe = rec + (fp8 ? kv_lora + (kv_lora / kQuantBlock) * int(sizeof(float)) : 2 * kv_lora);
    return bf16_to_float(reinterpret_cast<const uint16_t*>(pe)[i]);
  }
};

}  // namespace dsa::cuda::dev
