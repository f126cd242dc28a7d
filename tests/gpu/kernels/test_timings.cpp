// Timings of the decode kernels (and of the prefill GEMM) at DeepSeek-V3.2 shapes, with the bytes
// each must read: a measurement, skipped by default. Run: test_gpu_kernels --no-skip -tc="*timings*"
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/indexer.hpp"
#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/indexer.hpp"
#include "kernels/cuda/topk.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;
using dsa::test::DeviceBuffer;

namespace {

// Mean microseconds per call over `reps` calls after a warm-up, and the bandwidth for `bytes`.
double time_it(const std::string& what, double bytes, const std::function<void()>& call, int reps = 50) {
  call();
  cudaEvent_t t0, t1;
  DSA_CUDA_OK(cudaEventCreate(&t0));
  DSA_CUDA_OK(cudaEventCreate(&t1));
  DSA_CUDA_OK(cudaEventRecord(t0));
  for (int i = 0; i < reps; ++i) call();
  DSA_CUDA_OK(cudaEventRecord(t1));
  DSA_CUDA_OK(cudaEventSynchronize(t1));
  float ms = 0.0f;
  DSA_CUDA_OK(cudaEventElapsedTime(&ms, t0, t1));
  const double us = 1e3 * double(ms) / reps;
  MESSAGE(what, ": ", us, " us, ", bytes / (us * 1e3), " GB/s");
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  return us;
}

}  // namespace

TEST_CASE("gpu decode kernel timings" * doctest::skip()) {
  DSA_REQUIRE_GPU();
  // Freed stream-ordered scratch (split attention, split top-k) stays in the pool, as CudaBackend
  // keeps it, instead of going back to the driver at each synchronisation.
  cudaMemPool_t pool;
  DSA_CUDA_OK(cudaDeviceGetDefaultMemPool(&pool, 0));
  uint64_t keep = UINT64_MAX;
  DSA_CUDA_OK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  std::mt19937 rng(51);
  {
    const int64_t n = 18432, k = 7168;  // a dense up-projection
    DeviceBuffer<float> x(test::random_bf16(static_cast<size_t>(k), rng)), y(static_cast<size_t>(n));
    DeviceBuffer<float> si(std::vector<float>(static_cast<size_t>((n / 128) * (k / 128)), 1e-3f));
    DeviceBuffer<uint8_t> w(std::vector<uint8_t>(static_cast<size_t>(n * k), 0x38));
    DeviceBuffer<uint16_t> wb(std::vector<uint16_t>(static_cast<size_t>(n * k), 0x3f80));
    time_it("matmul_fp8 GEMV 18432x7168", double(n * k), [&] {
      cuda::matmul_fp8(x.get(), k, 1, k, w.get(), k, si.get(), k / 128, n, y.get(), n, nullptr);
    });
    time_it("matmul_bf16 GEMV 18432x7168", double(2 * n * k), [&] {
      cuda::matmul_bf16(x.get(), k, 1, k, wb.get(), k, n, y.get(), n, true, nullptr);
    });
    // Narrow projections of a decode step (kv_a 576, q_a 1536, the indexer's wk 128 rows of 7168):
    // matmul_fp8 splits k over blocks where the rows alone leave SMs idle; one routed pair runs
    // the same GEMV unsplit.
    // The router [256, 7168] and the indexer's weights_proj [64, 7168] in bf16, k split over blocks.
    for (int64_t narrow : {64, 256}) {
      time_it("matmul_bf16 GEMV " + std::to_string(narrow) + "x7168 (k split over blocks)", double(2 * narrow * k),
              [&] { cuda::matmul_bf16(x.get(), k, 1, k, wb.get(), k, narrow, y.get(), narrow, false, nullptr); });
    }
    for (int64_t narrow : {128, 576, 1536}) {
      const std::string shape = std::to_string(narrow) + "x7168";
      time_it("matmul_fp8 GEMV " + shape + " (k split over blocks)", double(narrow * k), [&] {
        cuda::matmul_fp8(x.get(), k, 1, k, w.get(), k, si.get(), k / 128, narrow, y.get(), narrow, nullptr);
      });
      const std::vector<int32_t> one_pair = {0};
      DeviceBuffer<int32_t> idx(one_pair);
      DeviceBuffer<cpu::Fp8Matrix> expert(std::vector<cpu::Fp8Matrix>{cpu::Fp8Matrix{w.get(), si.get()}});
      time_it("matmul_fp8 GEMV " + shape + " unsplit (one routed pair)", double(narrow * k), [&] {
        cuda::matmul_fp8_routed(x.get(), k, 1, idx.get(), 1, 0, 1, expert.get(), k, narrow, y.get(), narrow, nullptr);
      });
    }
    // A prefill chunk of 2048 tokens: the GEMM (tensor cores on sm_80+); the rate in TFLOP/s is
    // 2 * 2048 * n * k / time. Its first 16 rows: a decode batch of 16 (two GEMV launches).
    const int64_t m = 2048;
    DeviceBuffer<float> xm(test::random_bf16(static_cast<size_t>(m * k), rng)), ym(static_cast<size_t>(m * n));
    time_it("matmul_fp8 GEMV 8 rows x 18432x7168", double(n * k), [&] {
      cuda::matmul_fp8(xm.get(), k, 8, k, w.get(), k, si.get(), k / 128, n, ym.get(), n, nullptr);
    });
    time_it("matmul_fp8 16 rows x 18432x7168 (FP8 tensor cores on sm_89+, else two GEMV launches)", double(n * k),
            [&] {
      cuda::matmul_fp8(xm.get(), k, 16, k, w.get(), k, si.get(), k / 128, n, ym.get(), n, nullptr);
    });
    // The same 16 rows on the FP8 tensor cores (sm_89+; weights read once), and 1 and 8 rows so, to
    // compare with the GEMV at those row counts.
    for (int64_t rows : {16, 8, 1}) {
      time_it("matmul_fp8 " + std::to_string(rows) + " rows x 18432x7168 on FP8 tensor cores (sm_89+; else nothing)",
              double(n * k), [&] {
                cuda::matmul_fp8_gemv_mma(xm.get(), k, rows, k, w.get(), k, si.get(), k / 128, n, ym.get(), n,
                                          nullptr);
              });
    }
    // The bf16 weights the same ways: two GEMV launches for 16 rows against the tensor cores at 16,
    // 8 and 1 rows.
    time_it("matmul_bf16 GEMV 8 rows x 18432x7168", double(2 * n * k), [&] {
      cuda::matmul_bf16(xm.get(), k, 8, k, wb.get(), k, n, ym.get(), n, true, nullptr);
    });
    for (int64_t rows : {16, 8, 1}) {
      time_it("matmul_bf16 " + std::to_string(rows) + " rows x 18432x7168 on the tensor cores (sm_80+)",
              double(2 * n * k), [&] {
                cuda::matmul_bf16_gemv_mma(xm.get(), k, 0, rows, k, wb.get(), k, 0, n, ym.get(), n, 0, 1, true,
                                           nullptr);
              });
    }
    // The same 16 rows through cuBLASLt (Hopper; weights read once, on the tensor cores), to decide
    // which takes a decode batch of 9-16 rows.
    time_it("matmul_fp8 16 rows x 18432x7168 through cuBLASLt (Hopper; else nothing runs)", double(n * k), [&] {
      cuda::matmul_fp8_cublaslt(xm.get(), k, 16, k, w.get(), k, si.get(), k / 128, n, ym.get(), n, nullptr);
    });
    const double flop = 2.0 * double(m) * double(n) * double(k);
    time_it("matmul_fp8 GEMM 2048 rows x 18432x7168, cuBLASLt on Hopper (bytes: FLOP / 1000, so GB/s reads as "
            "TFLOP/s)",
            flop / 1e3,
            [&] { cuda::matmul_fp8(xm.get(), k, m, k, w.get(), k, si.get(), k / 128, n, ym.get(), n, nullptr); }, 5);
    // The same product on the own tensor-core kernel (gemm_grouped.cu: e4m3 products on sm_89+):
    // scales with a padded stride, which cuBLASLt does not take.
    const int64_t ld_pad = k / 128 + 4;
    DeviceBuffer<float> si_pad(std::vector<float>(static_cast<size_t>((n / 128) * ld_pad), 1e-3f));
    time_it(
        "matmul_fp8 GEMM 2048 rows x 18432x7168, own tensor-core kernel (as TFLOP/s)", flop / 1e3,
        [&] { cuda::matmul_fp8(xm.get(), k, m, k, w.get(), k, si_pad.get(), ld_pad, n, ym.get(), n, nullptr); }, 5);
    time_it(
        "matmul_bf16 GEMM 2048 rows x 18432x7168, cuBLASLt on sm_80+ (as TFLOP/s)", flop / 1e3,
        [&] { cuda::matmul_bf16(xm.get(), k, m, k, wb.get(), k, n, ym.get(), n, true, nullptr); }, 5);
    // The same product on the own tensor-core GEMM (gemm_mma.cu): a weight stride that is not a
    // multiple of 8, which cuBLASLt is not given.
    {
      DeviceBuffer<uint16_t> wb_pad(std::vector<uint16_t>(static_cast<size_t>(n * (k + 4)), 0x3c00));
      time_it(
          "matmul_bf16 GEMM 2048 rows x 18432x7168, own tensor-core GEMM (as TFLOP/s)", flop / 1e3,
          [&] { cuda::matmul_bf16(xm.get(), k, m, k, wb_pad.get(), k + 4, n, ym.get(), n, true, nullptr); }, 5);
    }
    // The routed experts of a 4096-token prefill chunk on one of 8 ranks: 32 experts of 128 rows
    // each, the gate projection [2048, 7168] (every expert reading the same weights here). All in
    // one grouped launch (rows quantised before), against one matmul_fp8 per expert (cuBLASLt on
    // Hopper, quantising its rows).
    const int64_t experts = 32, per = 128, rows = experts * per, inter = 2048;
    const double moe_flop = 2.0 * double(rows) * double(inter) * double(k);
    DeviceBuffer<uint8_t> codes(std::vector<uint8_t>(static_cast<size_t>(rows * k), 0x38));
    DeviceBuffer<float> code_scales(std::vector<float>(static_cast<size_t>(rows * k / 128), 1e-2f));
    std::vector<int32_t> first(static_cast<size_t>(experts + 1));
    for (int64_t e = 0; e <= experts; ++e) first[size_t(e)] = int32_t(e * per);
    DeviceBuffer<int32_t> dfirst(first);
    DeviceBuffer<cpu::Fp8Matrix> table(
        std::vector<cpu::Fp8Matrix>(static_cast<size_t>(experts), cpu::Fp8Matrix{w.get(), si.get()}));
    DeviceBuffer<float> ye(static_cast<size_t>(rows * inter));
    time_it(
        "matmul_fp8_grouped 32 experts x 128 rows x 2048x7168, one launch (as TFLOP/s)", moe_flop / 1e3,
        [&] {
          cuda::matmul_fp8_grouped(codes.get(), code_scales.get(), k, nullptr, dfirst.get(), first.data(), experts,
                                   table.get(), inter, ye.get(), inter, nullptr);
        },
        5);
    time_it(
        "matmul_fp8 per expert, 32 x 128 rows x 2048x7168 (as TFLOP/s)", moe_flop / 1e3,
        [&] {
          for (int64_t e = 0; e < experts; ++e)
            cuda::matmul_fp8(xm.get() + (e % (m / per)) * per * k, k, per, k, w.get(), k, si.get(), k / 128, inter,
                             ye.get() + e * per * inter, inter, nullptr);
        },
        5);
  }
  const int64_t n_keys = 131072;
  {
    const int64_t dim = 128, heads = 64, n_pages = n_keys / 64;
    const size_t page_bytes = cpu::indexer_page_bytes(dim);
    std::vector<int32_t> pages(static_cast<size_t>(n_pages));
    std::iota(pages.begin(), pages.end(), 0);
    DeviceBuffer<uint8_t> arena(std::vector<uint8_t>(static_cast<size_t>(n_pages) * page_bytes, 0x30));
    DeviceBuffer<int32_t> dp(pages);
    DeviceBuffer<uint8_t> q(std::vector<uint8_t>(static_cast<size_t>(heads * dim), 0x38));
    DeviceBuffer<float> w(std::vector<float>(static_cast<size_t>(heads), 0.01f)), scores(static_cast<size_t>(n_keys));
    const cuda::IndexerCacheView view{arena.get(), dp.get(), dim, page_bytes};
    time_it("indexer_scores 128K keys x 64 heads", double(n_pages) * double(page_bytes),
            [&] { cuda::indexer_scores(q.get(), w.get(), heads, view, n_keys, scores.get(), nullptr); });
    // A prefill chunk of 256 queries at the end of a 32K-key sequence (each page's keys shared by 8
    // queries): compute-bound, so its TFLOP/s.
    const int64_t n_q = 256, keys = 32768;
    DeviceBuffer<uint8_t> qs(std::vector<uint8_t>(static_cast<size_t>(n_q * heads * dim), 0x38));
    DeviceBuffer<float> ws(std::vector<float>(static_cast<size_t>(n_q * heads), 0.01f));
    DeviceBuffer<float> chunk_scores(static_cast<size_t>(n_q * keys));
    std::vector<int32_t> counts(static_cast<size_t>(n_q));
    std::iota(counts.begin(), counts.end(), int32_t(keys - n_q + 1));
    DeviceBuffer<int32_t> dcounts(counts);
    const double us = time_it("indexer_scores_batched prefill, 256 queries x 32K keys", double(keys / 64) * page_bytes,
                              [&] {
                                cuda::indexer_scores_batched(qs.get(), ws.get(), heads, view, 0, n_q, dcounts.get(),
                                                             keys, chunk_scores.get(), keys, nullptr);
                              });
    MESSAGE("  ", 2.0 * double(n_q) * double(keys) * double(heads * dim) / (us * 1e6), " TFLOP/s");
  }
  {
    std::normal_distribution<float> d(0.0f, 1.0f);
    const int64_t rows = 16;
    std::vector<float> s(static_cast<size_t>(rows * n_keys));
    for (auto& v : s) v = d(rng);
    DeviceBuffer<float> ds(s);
    DeviceBuffer<int32_t> out(static_cast<size_t>(rows * 2048));
    time_it("topk_positions_split 128K, k 2048, 1 row", double(n_keys) * 4, [&] {
      cuda::topk_positions_split(ds.get(), n_keys, 1, n_keys, nullptr, 2048, out.get(), 2048, nullptr);
    });
    time_it("topk_positions_rows 128K, k 2048, 1 row", double(n_keys) * 4, [&] {
      cuda::topk_positions_rows(ds.get(), n_keys, 1, n_keys, nullptr, 2048, out.get(), 2048, nullptr);
    });
    time_it("topk_positions_split 128K, k 2048, 16 rows", double(rows * n_keys) * 4, [&] {
      cuda::topk_positions_split(ds.get(), n_keys, rows, n_keys, nullptr, 2048, out.get(), 2048, nullptr);
    });
    time_it("topk_positions_rows 128K, k 2048, 16 rows", double(rows * n_keys) * 4, [&] {
      cuda::topk_positions_rows(ds.get(), n_keys, rows, n_keys, nullptr, 2048, out.get(), 2048, nullptr);
    });
  }
  {
    const int64_t kv_lora = 512, rope = 64, heads = 128, n_sel = 2048, seq = 65536;
    const auto fmt = cpu::LatentFormat::fp8;
    const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
    std::vector<int32_t> pages(static_cast<size_t>(seq / 64)), sel(static_cast<size_t>(n_sel));
    std::iota(pages.begin(), pages.end(), 0);
    for (auto& v : sel) v = int32_t(rng() % uint32_t(seq));
    std::vector<uint8_t> arena(static_cast<size_t>(seq) * rb, 0);
    for (int64_t t = 0; t < seq; ++t) {  // scale 1.0 for every block
      for (int64_t b = 0; b < kv_lora / 128; ++b) {
        const float one = 1.0f;
        std::memcpy(arena.data() + size_t(t) * rb + size_t(kv_lora + 4 * b), &one, 4);
      }
    }
    DeviceBuffer<uint8_t> da(arena);
    DeviceBuffer<int32_t> dp(pages), ds(sel);
    DeviceBuffer<float> qa(test::random_bf16(static_cast<size_t>(heads * kv_lora), rng, 0.05f));
    DeviceBuffer<float> qp(test::random_bf16(static_cast<size_t>(heads * rope), rng, 0.05f)), o(static_cast<size_t>(heads * kv_lora));
    const cuda::LatentCacheView view{da.get(), dp.get(), fmt, kv_lora, rope, rb};
    time_it("sparse_mla_decode 128 heads x 2048 fp8 records", double(n_sel) * double(rb),
            [&] { cuda::sparse_mla_decode(qa.get(), qp.get(), heads, view, ds.get(), n_sel, 0.07f, o.get(), nullptr); });
    time_it("sparse_mla_decode_split 128 heads x 2048 fp8 records", double(n_sel) * double(rb), [&] {
      cuda::sparse_mla_decode_split(qa.get(), qp.get(), heads, view, ds.get(), n_sel, 0.07f, o.get(), nullptr);
    });
    // Tensor parallel over 8 GPUs: 16 heads per rank.
    time_it("sparse_mla_decode 16 heads x 2048 fp8 records", double(n_sel) * double(rb),
            [&] { cuda::sparse_mla_decode(qa.get(), qp.get(), 16, view, ds.get(), n_sel, 0.07f, o.get(), nullptr); });
    time_it("sparse_mla_decode_split 16 heads x 2048 fp8 records", double(n_sel) * double(rb), [&] {
      cuda::sparse_mla_decode_split(qa.get(), qp.get(), 16, view, ds.get(), n_sel, 0.07f, o.get(), nullptr);
    });
    // The tensor-core kernel: one query (splits merged), then 128 queries (a decode batch or a
    // prefill chunk: FlashMLA's 410 TFLOPS anchor is batch 128 x 128 heads), in TFLOP/s of the
    // nominal work (the kernel's second product for the weights' remainder not counted).
    if (cuda::sparse_mla_decode_mma_supported(kv_lora, rope)) {
      const double flop_q = 2.0 * double(heads) * double(n_sel) * double(2 * kv_lora + rope);
      double us = time_it("sparse_mla_decode_mma 128 heads x 2048 fp8 records", double(n_sel) * double(rb), [&] {
        cuda::sparse_mla_decode_mma(qa.get(), qp.get(), heads, view, ds.get(), n_sel, 0.07f, o.get(), nullptr);
      });
      MESSAGE("  ", flop_q / (us * 1e6), " TFLOP/s");
      const int64_t n_q = 128;
      std::vector<int32_t> sel_q(static_cast<size_t>(n_q * n_sel));
      for (auto& v : sel_q) v = int32_t(rng() % uint32_t(seq));
      DeviceBuffer<int32_t> dsq(sel_q);
      DeviceBuffer<float> qaq(test::random_bf16(static_cast<size_t>(n_q * heads * kv_lora), rng, 0.05f));
      DeviceBuffer<float> qpq(test::random_bf16(static_cast<size_t>(n_q * heads * rope), rng, 0.05f));
      DeviceBuffer<float> oq(static_cast<size_t>(n_q * heads * kv_lora));
      us = time_it("sparse_mla_decode_mma_batched 128 queries x 128 heads x 2048 fp8 records",
                   double(n_q * n_sel) * double(rb), [&] {
                     cuda::sparse_mla_decode_mma_batched(qaq.get(), qpq.get(), heads, view, 0, n_q, dsq.get(), n_sel,
                                                         nullptr, n_sel, 0.07f, oq.get(), nullptr);
                   });
      MESSAGE("  ", double(n_q) * flop_q / (us * 1e6), " TFLOP/s");
    }
  }
}
