// CUDA sparse MLA decode (see attention.hpp).
#include <algorithm>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device.cuh"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/latent_records.cuh"

namespace dsa::cuda {
namespace {

constexpr int kHeads = 4;  // heads per block, sharing each record load
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
using dev::Records;

__host__ __device__ constexpr int padded_slots(int n_sel) { return (n_sel + 3) / 4 * 4; }

// Shared memory: q_abs [kHeads][kv_lora], q_pe [kHeads][rope], scores / probabilities [kHeads][n_sel],
// then the selected records' cache slots, padded to a multiple of 4 entries: the compiler reads them
// four at a time (one 16-byte load), also for the last ones. blockIdx.y: the query (its q_abs, q_pe
// and o_lat after the previous query's, its page table pages_stride entries on, its selection
// sel_stride on, n_sel_of[y] keys, or n_sel).
__global__ void __launch_bounds__(kThreads)
sparse_mla_decode_kernel(const float* q_abs, const float* q_pe, int n_heads, Records rec, int64_t pages_stride,
                         const int32_t* sel, int64_t sel_stride, const int32_t* n_sel_of, int n_sel,
                         float softmax_scale, float* o_lat) {
  extern __shared__ __align__(16) float smem_f[];
  __shared__ double dscratch[32];
  __shared__ float fscratch[32];
  const int kv_lora = rec.kv_lora, rope = rec.rope;
  const int h0 = blockIdx.x * kHeads, hn = min(kHeads, n_heads - h0);
  const int64_t query = blockIdx.y;
  q_abs += query * n_heads * kv_lora;
  q_pe += query * n_heads * rope;
  o_lat += query * n_heads * kv_lora;
  rec.pages += query * pages_stride;
  sel += query * sel_stride;
  if (n_sel_of) n_sel = min(n_sel_of[query], n_sel);  // never past the shared memory sized for max_sel
  if (n_sel == 0) {  // the whole block: zeros
    for (int i = threadIdx.x; i < hn * kv_lora; i += kThreads) o_lat[size_t(h0) * kv_lora + i] = 0.0f;
    return;
  }
  float* qa = smem_f;
  float* qp = qa + kHeads * kv_lora;
  float* p = qp + kHeads * rope;
  uint32_t* slots = reinterpret_cast<uint32_t*>(p + kHeads * n_sel);
  for (int j = threadIdx.x; j < padded_slots(n_sel); j += kThreads) slots[j] = j < n_sel ? rec.slot(sel[j]) : 0u;
  for (int i = threadIdx.x; i < kHeads * kv_lora; i += kThreads)
    qa[i] = i / kv_lora < hn ? q_abs[size_t(h0) * kv_lora + i] : 0.0f;
  for (int i = threadIdx.x; i < kHeads * rope; i += kThreads) qp[i] = i / rope < hn ? q_pe[size_t(h0) * rope + i] : 0.0f;
  __syncthreads();

  // Pass 1: scores, one warp per selected record.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int j = warp; j < n_sel; j += kWarps) {
    const uint8_t* r = rec.at(slots[j]);
    float s[kHeads] = {}, s_pe[kHeads] = {};
    for (int c = lane; c < kv_lora; c += 32) {
      const float v = rec.c_kv(r, c);
#pragma unroll
      for (int h = 0; h < kHeads; ++h) s[h] = fmaf(qa[h * kv_lora + c], v, s[h]);
    }
    for (int i = lane; i < rope; i += 32) {
      const float v = rec.k_pe(r, i);
#pragma unroll
      for (int h = 0; h < kHeads; ++h) s_pe[h] = fmaf(qp[h * rope + i], v, s_pe[h]);
    }
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
      const float a = dev::warp_sum(s[h]), b = dev::warp_sum(s_pe[h]);
      if (lane == 0) p[h * n_sel + j] = __fmul_rn(__fadd_rn(a, b), softmax_scale);
    }
  }
  __syncthreads();

  // Softmax per head: max, exp, fp64 sum, one reciprocal.
  for (int h = 0; h < hn; ++h) {
    float* ph = p + h * n_sel;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n_sel; j += kThreads) m = fmaxf(m, ph[j]);
    m = dev::block_max(m, fscratch);
    double sum = 0.0;
    for (int j = threadIdx.x; j < n_sel; j += kThreads) {
      const float e = expf(__fsub_rn(ph[j], m));
      ph[j] = e;
      sum += e;
    }
    sum = dev::block_sum(sum, dscratch);
    const float inv = float(1.0 / sum);
    for (int j = threadIdx.x; j < n_sel; j += kThreads) ph[j] = __fmul_rn(ph[j], inv);
  }
  __syncthreads();

  // Pass 2: o[h][c] = sum_j p[h][j] * c_kv[j][c], a thread per column.
  for (int c = threadIdx.x; c < kv_lora; c += kThreads) {
    float acc[kHeads] = {};
    for (int j = 0; j < n_sel; ++j) {
      const float v = rec.c_kv(rec.at(slots[j]), c);
#pragma unroll
      for (int h = 0; h < kHeads; ++h) acc[h] = fmaf(p[h * n_sel + j], v, acc[h]);
    }
    for (int h = 0; h < hn; ++h) o_lat[size_t(h0 + h) * kv_lora + c] = dev::round_bf16(acc[h]);
  }
}

// One block per token, one warp per 128-block of c_kv.
__global__ void latent_write_kernel(Records rec, const int64_t* pos, const float* c_kv, const float* k_pe) {
  const int64_t t = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kv_lora = rec.kv_lora;
  uint8_t* r = const_cast<uint8_t*>(rec.at(rec.slot(int32_t(pos[t]))));
  const float* c = c_kv + t * kv_lora;
  for (int b = warp; b < kv_lora / dev::kQuantBlock; b += kWarps) {
    const float* cb = c + b * dev::kQuantBlock;
    float amax = 0.0f;
    for (int i = lane; i < dev::kQuantBlock; i += 32) amax = fmaxf(amax, fabsf(cb[i]));
    const float scale = dev::ue8m0_scale(dev::warp_max(amax));
    for (int i = lane; i < dev::kQuantBlock; i += 32) {
      const int e = b * dev::kQuantBlock + i;
      const uint8_t code = dev::quantise(cb[i], scale);
      if (rec.fp8)
        r[e] = code;
      else
        reinterpret_cast<uint16_t*>(r)[e] = dev::float_to_bf16(dev::round_bf16(dev::fp8_to_float(code) * scale));
    }
    if (rec.fp8 && lane == 0) reinterpret_cast<float*>(r + kv_lora)[b] = scale;
  }
  uint16_t* pe = reinterpret_cast<uint16_t*>(
      r + (rec.fp8 ? kv_lora + (kv_lora / dev::kQuantBlock) * int(sizeof(float)) : 2 * kv_lora));
  for (int i = threadIdx.x; i < rec.rope; i += blockDim.x) pe[i] = dev::float_to_bf16(k_pe[t * rec.rope + i]);
}

}  // namespace

void latent_write(uint8_t* arena, const int32_t* pages, LatentFormat fmt, int64_t kv_lora, int64_t rope_dim,
                  int64_t n_tok, const int64_t* pos, const float* c_kv, const float* k_pe, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(kv_lora > 0 && kv_lora % 128 == 0, "latent_write needs kv_lora % 128 == 0");
  const size_t record_bytes = cpu::latent_record_bytes(fmt, kv_lora, rope_dim);
  DSA_CUDA_REQUIRE(record_bytes % 4 == 0 && reinterpret_cast<uintptr_t>(arena) % 4 == 0,
                   "latent_write: records must start 4-byte aligned");
  if (n_tok <= 0) return;
  const Records rec{arena, pages, record_bytes, int(kv_lora), int(rope_dim), fmt == LatentFormat::fp8};
  latent_write_kernel<<<unsigned(n_tok), kThreads, 0, stream>>>(rec, pos, c_kv, k_pe);
  DSA_CUDA_CHECK_LAUNCH();
}

namespace {

// Dynamic shared memory of one sparse_mla_decode block, and the device's opt-in limit.
size_t decode_smem(int64_t kv_lora, int64_t rope_dim, int64_t n_sel) {
  return size_t(kHeads) * size_t(kv_lora + rope_dim + n_sel) * sizeof(float) +
         size_t(padded_slots(int(n_sel))) * sizeof(uint32_t);
}

size_t smem_optin() {
  int device = 0, smem_max = 0;
  DSA_CUDA_CHECK(cudaGetDevice(&device));
  DSA_CUDA_CHECK(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return size_t(smem_max);
}

}  // namespace

int64_t sparse_mla_decode_max_sel(int64_t kv_lora, int64_t rope_dim) {
  const size_t limit = smem_optin();
  // decode_smem grows by 20 bytes per key (up to the slot padding): start at the bound that
  // solves for it and step down the few keys the padding may take.
  const size_t fixed = decode_smem(kv_lora, rope_dim, 0) + 2048;
  int64_t n = limit > fixed ? int64_t((limit - fixed) / (kHeads * sizeof(float) + sizeof(uint32_t))) : 0;
  while (n > 0 && decode_smem(kv_lora, rope_dim, n) + 2048 > limit) --n;
  return n;
}

void sparse_mla_decode(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                       const int32_t* sel, int64_t n_sel, float softmax_scale, float* o_lat, cudaStream_t stream) {
  sparse_mla_decode_batched(q_abs, q_pe, n_heads, view, 0, 1, sel, 0, nullptr, n_sel, softmax_scale, o_lat, stream);
}

void sparse_mla_decode_batched(const float* q_abs, const float* q_pe, int64_t n_heads, const LatentCacheView& view,
                               int64_t pages_stride, int64_t n_q, const int32_t* sel, int64_t sel_stride,
                               const int32_t* n_sel, int64_t max_sel, float softmax_scale, float* o_lat,
                               cudaStream_t stream) {
  if (dev::sparse_mla_nothing_to_launch(view, n_heads, n_q, max_sel, o_lat, stream)) return;
  const bool fp8 = view.fmt == LatentFormat::fp8;
  const size_t smem = decode_smem(view.kv_lora, view.rope_dim, max_sel);
  DSA_CUDA_REQUIRE(smem + 2048 <= smem_optin(), "sparse_mla_decode: n_sel too large for shared memory");
  dev::allow_dynamic_smem(sparse_mla_decode_kernel, smem);
  // Up to 65535 queries per launch (grid.y).
  for (int64_t q0 = 0; q0 < n_q; q0 += 65535) {
    const int64_t n = std::min<int64_t>(65535, n_q - q0);
    const Records rec{view.arena, view.pages + q0 * pages_stride, view.record_bytes, int(view.kv_lora),
                      int(view.rope_dim), fp8};
    const dim3 grid(unsigned((n_heads + kHeads - 1) / kHeads), unsigned(n));
    sparse_mla_decode_kernel<<<grid, kThreads, smem, stream>>>(
        q_abs + q0 * n_heads * view.kv_lora, q_pe + q0 * n_heads * view.rope_dim, int(n_heads), rec, pages_stride,
        sel + q0 * sel_stride, sel_stride, n_sel ? n_sel + q0 : nullptr, int(max_sel), softmax_scale,
        o_lat + q0 * n_heads * view.kv_lora);
    DSA_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace dsa::cuda
