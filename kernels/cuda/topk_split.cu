// CUDA top-k with each row split over several blocks (see topk.hpp, topk_positions_split).
//
// A row is cut into chunks of kChunk positions, one block each, and four launches select from it:
//   1. histogram: each chunk adds the histogram of its keys' top 12 bits to the row's (global);
//   2. select: every chunk reads the row's histogram, finds the bin holding the k-th largest key,
//      counts its entries above that bin and gathers the entries in it (key and position) into the
//      row's candidate list;
//   3. resolve (a block per row): the radix select finishes on the low 20 bits of the candidates
//      (of the whole row when there were more than kCandidates: heavy ties), giving the k-th
//      largest key and how many entries equal to it are taken; then, per chunk, the number of
//      taken entries above and equal to it in the chunks before;
//   4. write: each chunk writes its winners in ascending position from those offsets.
// So the row is read three times, by all of the GPU's SMs rather than one.
#include <algorithm>

#include "kernels/cuda/check.hpp"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/topk.cuh"
#include "kernels/cuda/topk.hpp"

namespace dsa::cuda {
namespace {

constexpr int kChunk = 4096;           // positions per block
constexpr int kThreads = 256;          // threads of the per-chunk kernels
constexpr int kResolveThreads = 1024;  // threads of the per-row kernel
constexpr int kTopBits = 12;           // the first digit: the key's top 12 bits
constexpr int kBins = 1 << kTopBits;
constexpr int kLowShift = 32 - kTopBits;
constexpr int64_t kMaxChunks = 256;
constexpr uint32_t kCandidates = 16384;  // per row, in global memory

using dev::order_key;

// The row's scratch, in global memory. Zeroed before the histogram: hist and n_cand.
struct Scratch {
  uint32_t* hist;       // [rows, kBins]
  uint32_t* n_cand;     // [rows]: entries of the selected bin (may exceed kCandidates)
  uint32_t* threshold;  // [rows]: the k-th largest key
  uint32_t* remaining;  // [rows]: entries equal to it that are taken
  uint32_t* chunk_gt;   // [rows, chunks]: entries in bins above the selected one
  uint32_t* gt_before;  // [rows, chunks]: taken entries above the threshold before the chunk
  uint32_t* eq_before;  // [rows, chunks]: entries equal to the threshold before the chunk
  uint32_t* cand_key;   // [rows, kCandidates]
  int32_t* cand_pos;    // [rows, kCandidates]
};

struct Rows {
  const float* scores;
  int64_t ld_scores, n;
  const int32_t* n_valid;
  int64_t k, chunks;

  __device__ int64_t valid(int64_t row) const { return n_valid ? int64_t(n_valid[row]) : n; }
};

// The bin of hist ([kBins], global) that holds the need-th largest key counting from the top, and
// how many of its entries are still needed. Called by every thread of a block of T threads.
template <int T>
__device__ void select_bin(const uint32_t* hist, uint32_t need, uint32_t* bin, uint32_t* rest) {
  constexpr int kPer = kBins / T;
  __shared__ uint32_t warp_total[T / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Thread t holds bins kBins-1 - kPer*t downwards: thread 0 the top ones.
  const int top = kBins - 1 - kPer * int(threadIdx.x);
  uint32_t sum = 0;
  for (int b = 0; b < kPer; ++b) sum += hist[top - b];
  uint32_t incl = sum;
  for (int off = 1; off < 32; off <<= 1) {
    const uint32_t t = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += t;
  }
  if (lane == 31) warp_total[warp] = incl;
  __syncthreads();
  for (int w = 0; w < warp; ++w) incl += warp_total[w];
  const uint32_t above = incl - sum;
  if (above < need && incl >= need) {  // exactly one thread
    uint32_t acc = above;
    for (int b = 0; b < kPer; ++b) {
      const uint32_t c = hist[top - b];
      if (acc + c >= need) {
        *bin = uint32_t(top - b);
        *rest = need - acc;
        break;
      }
      acc += c;
    }
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kThreads) split_histogram(Rows rows, Scratch sc) {
  __shared__ uint32_t hist[kBins];
  const int64_t row = blockIdx.y;
  const int64_t nr = rows.valid(row);
  const int64_t lo = int64_t(blockIdx.x) * kChunk, hi = min(nr, lo + kChunk);
  if (min(rows.k, nr) <= 0 || lo >= hi) return;
  for (int b = threadIdx.x; b < kBins; b += kThreads) hist[b] = 0;
  __syncthreads();
  const float* s = rows.scores + row * rows.ld_scores + lo;
  dev::add_histogram(
      hi - lo, [&](int64_t i) { return order_key(s[i]); }, 0u, 0u, kLowShift, uint32_t(kBins - 1), hist);
  __syncthreads();
  uint32_t* out = sc.hist + row * kBins;
  for (int b = threadIdx.x; b < kBins; b += kThreads)
    if (hist[b] != 0) atomicAdd(&out[b], hist[b]);
}

__global__ void __launch_bounds__(kThreads) split_select(Rows rows, Scratch sc) {
  __shared__ uint32_t bin, rest;
  __shared__ uint32_t scratch[32];
  const int64_t row = blockIdx.y;
  const int64_t nr = rows.valid(row), kr = min(rows.k, nr);
  const int64_t lo = int64_t(blockIdx.x) * kChunk, hi = min(nr, lo + kChunk);
  uint32_t* chunk_gt = sc.chunk_gt + row * rows.chunks + blockIdx.x;
  if (kr <= 0) return;
  if (lo >= hi) {
    if (threadIdx.x == 0) *chunk_gt = 0;
    return;
  }
  select_bin<kThreads>(sc.hist + row * kBins, uint32_t(kr), &bin, &rest);
  const float* s = rows.scores + row * rows.ld_scores;
  uint32_t* n_cand = sc.n_cand + row;
  uint32_t* cand_key = sc.cand_key + row * kCandidates;
  int32_t* cand_pos = sc.cand_pos + row * kCandidates;
  const int lane = threadIdx.x & 31;
  uint32_t gt = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
    const uint32_t key = order_key(s[i]);
    const uint32_t b = key >> kLowShift;
    gt += b > bin;
    // The selected bin's entries, appended a warp at a time.
    const unsigned active = __activemask();
    const unsigned take = __ballot_sync(active, b == bin);
    if (take == 0) continue;
    const int leader = __ffs(take) - 1;
    uint32_t base = 0;
    if (lane == leader) base = atomicAdd(n_cand, unsigned(__popc(take)));
    base = __shfl_sync(active, base, leader);
    const uint32_t at = base + uint32_t(__popc(take & ((1u << lane) - 1u)));
    if (b == bin && at < kCandidates) {
      cand_key[at] = key;
      cand_pos[at] = int32_t(i);
    }
  }
  gt = dev::block_sum(gt, scratch);
  if (threadIdx.x == 0) *chunk_gt = gt;
}

__global__ void __launch_bounds__(kResolveThreads) split_resolve(Rows rows, Scratch sc, int32_t* out, int64_t ld_out) {
  __shared__ uint32_t bin, rest;
  __shared__ uint32_t hist[256];
  __shared__ uint32_t sel_digit, sel_remaining, sel_count;
  __shared__ uint32_t chunk_gt_extra[kMaxChunks], chunk_eq[kMaxChunks];
  const int64_t row = blockIdx.x;
  const int64_t nr = rows.valid(row), kr = min(rows.k, nr);
  int32_t* o = out + row * ld_out;
  for (int64_t i = kr + threadIdx.x; i < rows.k; i += kResolveThreads) o[i] = -1;
  if (kr <= 0) return;
  select_bin<kResolveThreads>(sc.hist + row * kBins, uint32_t(kr), &bin, &rest);

  // The entries of the selected bin: the candidates, or the whole row when they did not fit.
  const float* s = rows.scores + row * rows.ld_scores;
  const uint32_t n_cand = sc.n_cand[row];
  const bool gathered = n_cand <= kCandidates;
  const uint32_t* cand_key = sc.cand_key + row * kCandidates;
  const int32_t* cand_pos = sc.cand_pos + row * kCandidates;
  const int64_t count = gathered ? int64_t(n_cand) : nr;
  const auto key_at = [&](int64_t i) { return gathered ? cand_key[i] : order_key(s[i]); };
  const auto position_at = [&](int64_t i) { return gathered ? int64_t(cand_pos[i]) : i; };

  // Radix select on the low 20 bits: 8, 8 and 4 bits.
  uint32_t prefix = bin << kLowShift, mask = ~0u << kLowShift, remaining = rest;
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = pass == 0 ? 12 : pass == 1 ? 4 : 0;
    const uint32_t digit_mask = shift == 0 ? 15u : 255u;
    for (int i = threadIdx.x; i < 256; i += kResolveThreads) hist[i] = 0;
    __syncthreads();
    dev::add_histogram(count, key_at, prefix, mask, shift, digit_mask, hist);
    __syncthreads();
    if (threadIdx.x < 32) dev::select_digit(hist, remaining, &sel_digit, &sel_remaining, &sel_count);
    __syncthreads();
    prefix |= sel_digit << shift;
    mask |= digit_mask << shift;
    remaining = sel_remaining;
  }

  // Per chunk: the selected bin's entries above the threshold and equal to it.
  for (int c = threadIdx.x; c < kMaxChunks; c += kResolveThreads) chunk_gt_extra[c] = chunk_eq[c] = 0;
  __syncthreads();
  const uint32_t top_mask = ~0u << kLowShift, top = bin << kLowShift;
  for (int64_t i = threadIdx.x; i < count; i += kResolveThreads) {
    const uint32_t key = key_at(i);
    if ((key & top_mask) != top) continue;
    const int64_t c = position_at(i) / kChunk;
    if (key > prefix) atomicAdd(&chunk_gt_extra[c], 1u);
    if (key == prefix) atomicAdd(&chunk_eq[c], 1u);
  }
  __syncthreads();

  // Exclusive scans over the chunks, by one warp: lane l owns chunks 8l .. 8l + 7.
  if (threadIdx.x < 32) {
    constexpr int kPer = kMaxChunks / 32;
    const int lane = threadIdx.x, c0 = kPer * lane;
    uint32_t gt[kPer], eq[kPer], gt_sum = 0, eq_sum = 0;
    for (int j = 0; j < kPer; ++j) {
      const int64_t c = c0 + j;
      gt[j] = c < rows.chunks ? sc.chunk_gt[row * rows.chunks + c] + chunk_gt_extra[c] : 0u;
      eq[j] = chunk_eq[c];
      gt_sum += gt[j];
      eq_sum += eq[j];
    }
    uint32_t gt_incl = gt_sum, eq_incl = eq_sum;
    for (int off = 1; off < 32; off <<= 1) {
      const uint32_t g = __shfl_up_sync(0xffffffffu, gt_incl, off), e = __shfl_up_sync(0xffffffffu, eq_incl, off);
      if (lane >= off) gt_incl += g, eq_incl += e;
    }
    uint32_t gt_run = gt_incl - gt_sum, eq_run = eq_incl - eq_sum;
    for (int j = 0; j < kPer; ++j) {
      const int64_t c = c0 + j;
      if (c < rows.chunks) {
        sc.gt_before[row * rows.chunks + c] = gt_run;
        sc.eq_before[row * rows.chunks + c] = eq_run;
      }
      gt_run += gt[j];
      eq_run += eq[j];
    }
    if (lane == 0) {
      sc.threshold[row] = prefix;
      sc.remaining[row] = remaining;
    }
  }
}

__global__ void __launch_bounds__(kThreads) split_write(Rows rows, Scratch sc, int32_t* out, int64_t ld_out) {
  __shared__ uint32_t warp_gt[kThreads / 32], warp_eq[kThreads / 32];
  const int64_t row = blockIdx.y;
  const int64_t nr = rows.valid(row);
  const int64_t lo = int64_t(blockIdx.x) * kChunk, hi = min(nr, lo + kChunk);
  if (min(rows.k, nr) <= 0 || lo >= hi) return;
  const int64_t at = row * rows.chunks + blockIdx.x;
  dev::ordered_write(rows.scores + row * rows.ld_scores, lo, hi, sc.threshold[row], sc.remaining[row], sc.gt_before[at],
                     sc.eq_before[at], out + row * ld_out, warp_gt, warp_eq);
}

template <class T>
T* carve(char*& p, int64_t count) {
  T* r = reinterpret_cast<T*>(p);
  p += (size_t(count) * sizeof(T) + 255) / 256 * 256;
  return r;
}

}  // namespace

int64_t topk_split_max_n() { return kMaxChunks * kChunk; }

void topk_positions_split(const float* scores, int64_t ld_scores, int64_t n_rows, int64_t n, const int32_t* n_valid,
                          int64_t k, int32_t* out, int64_t ld_out, cudaStream_t stream) {
  DSA_CUDA_REQUIRE(ld_out >= k, "topk_positions_split needs ld_out >= k");
  DSA_CUDA_REQUIRE(n_valid != nullptr || n <= ld_scores || n_rows <= 1, "topk_positions_split needs n <= ld_scores");
  DSA_CUDA_REQUIRE(n <= topk_split_max_n(), "topk_positions_split: row longer than topk_split_max_n()");
  if (n_rows <= 0 || k <= 0) return;
  const int64_t chunks = std::max<int64_t>(1, (n + kChunk - 1) / kChunk);
  // Up to 65535 rows per launch (grid.y).
  for (int64_t r0 = 0; r0 < n_rows; r0 += 65535) {
    const int64_t nr = std::min<int64_t>(65535, n_rows - r0);
    // The scratch, from the stream's memory pool (captured into a CUDA graph as its own allocation);
    // the zeroed part (histograms and candidate counts) first.
    const size_t bytes = 256 * 10 + size_t(nr) * (size_t(kBins) + 3 + 3 * size_t(chunks) + 2 * kCandidates) * 4;
    char* base = dev::pool_scratch<char>(bytes, stream);
    char* p = base;
    Scratch sc{};
    sc.hist = carve<uint32_t>(p, nr * kBins);
    sc.n_cand = carve<uint32_t>(p, nr);
    const size_t zeroed = size_t(p - base);
    sc.threshold = carve<uint32_t>(p, nr);
    sc.remaining = carve<uint32_t>(p, nr);
    sc.chunk_gt = carve<uint32_t>(p, nr * chunks);
    sc.gt_before = carve<uint32_t>(p, nr * chunks);
    sc.eq_before = carve<uint32_t>(p, nr * chunks);
    sc.cand_key = carve<uint32_t>(p, nr * kCandidates);
    sc.cand_pos = carve<int32_t>(p, nr * kCandidates);
    DSA_CUDA_REQUIRE(size_t(p - base) <= bytes, "topk_positions_split: scratch layout");
    DSA_CUDA_CHECK(cudaMemsetAsync(base, 0, zeroed, stream));
    const Rows rows{scores + r0 * ld_scores, ld_scores, n, n_valid ? n_valid + r0 : nullptr, k, chunks};
    int32_t* o = out + r0 * ld_out;
    const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(nr));
    split_histogram<<<grid, kThreads, 0, stream>>>(rows, sc);
    DSA_CUDA_CHECK_LAUNCH();
    split_select<<<grid, kThreads, 0, stream>>>(rows, sc);
    DSA_CUDA_CHECK_LAUNCH();
    split_resolve<<<unsigned(nr), kResolveThreads, 0, stream>>>(rows, sc, o, ld_out);
    DSA_CUDA_CHECK_LAUNCH();
    split_write<<<grid, kThreads, 0, stream>>>(rows, sc, o, ld_out);
    DSA_CUDA_CHECK_LAUNCH();
    DSA_CUDA_CHECK(cudaFreeAsync(base, stream));
  }
}

}  // namespace dsa::cuda
