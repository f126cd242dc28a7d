// GPU sparse MLA decode (absorbed form) over bf16 and fp8 latent records, against the CPU
// reference. Tolerance: fp32 scores and sums in another order, exp from another library, then the
// bf16 output rounding: each element within 2^-7 relative plus 1e-3 of the output's rms,
// normalised squared error <= 1e-5.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/attention.hpp"
#include "kernels/cuda/attention.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;
using dsa::test::DeviceBuffer;

TEST_CASE("gpu sparse_mla_decode (two-pass, split-KV, tensor cores) matches the CPU reference, both formats") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(41);
  const int64_t kv_lora = 512, rope = 64, seq = 64 * 10 + 23;  // a partial last page
  for (auto fmt : {cpu::LatentFormat::bf16, cpu::LatentFormat::fp8}) {
    // 6: a partial group of heads; 24 and 40: of the 32 and 64 of a tensor-core block.
    for (int64_t n_heads : {16, 6, 24, 40}) {
      for (int64_t n_sel : {int64_t(300), int64_t(1), int64_t(seq)}) {
        CAPTURE(int(fmt));
        CAPTURE(n_heads);
        CAPTURE(n_sel);
        const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
        const int64_t n_pages = (seq + 63) / 64;
        std::vector<int32_t> pages(static_cast<size_t>(n_pages));
        std::iota(pages.begin(), pages.end(), 0);
        std::shuffle(pages.begin(), pages.end(), rng);
        std::vector<uint8_t> arena(static_cast<size_t>(n_pages) * 64 * rb, 0);
        for (int64_t t = 0; t < seq; ++t) {
          const auto c = test::random_bf16(static_cast<size_t>(kv_lora), rng, 1.0f + float(t % 3));
          const auto pe = test::random_bf16(static_cast<size_t>(rope), rng);
          cpu::latent_write(arena.data(), pages.data(), fmt, kv_lora, rope, t, c.data(), pe.data());
        }
        // Selection: distinct positions in shuffled order.
        std::vector<int32_t> sel(static_cast<size_t>(seq));
        std::iota(sel.begin(), sel.end(), 0);
        std::shuffle(sel.begin(), sel.end(), rng);
        sel.resize(static_cast<size_t>(n_sel));
        const auto q_abs = test::random_bf16(static_cast<size_t>(n_heads * kv_lora), rng, 0.1f);
        const auto q_pe = test::random_bf16(static_cast<size_t>(n_heads * rope), rng, 0.3f);
        const float scale = 1.0f / std::sqrt(192.0f);

        const cpu::LatentCacheView host_view{arena.data(), pages.data(), fmt, kv_lora, rope, rb};
        std::vector<float> want(static_cast<size_t>(n_heads * kv_lora));
        cpu::sparse_mla_decode(q_abs.data(), q_pe.data(), n_heads, host_view, sel.data(), n_sel, scale, want.data());

        DeviceBuffer<uint8_t> da(arena);
        DeviceBuffer<int32_t> dp(pages), ds(sel);
        DeviceBuffer<float> dqa(q_abs), dqp(q_pe), dout(want.size());
        const cuda::LatentCacheView view{da.get(), dp.get(), fmt, kv_lora, rope, rb};
        cuda::sparse_mla_decode(dqa.get(), dqp.get(), n_heads, view, ds.get(), n_sel, scale, dout.get(), nullptr);
        test::check_close(dout.to_host(), want, 1.0 / 128, 1e-3, 1e-5, "sparse_mla_decode");
        DeviceBuffer<float> dsplit(want.size());
        cuda::sparse_mla_decode_split(dqa.get(), dqp.get(), n_heads, view, ds.get(), n_sel, scale, dsplit.get(),
                                      nullptr);
        test::check_close(dsplit.to_host(), want, 1.0 / 128, 1e-3, 1e-5, "sparse_mla_decode_split");
        if (cuda::sparse_mla_decode_mma_supported(kv_lora, rope)) {
          DeviceBuffer<float> dmma(want.size());
          cuda::sparse_mla_decode_mma(dqa.get(), dqp.get(), n_heads, view, ds.get(), n_sel, scale, dmma.get(),
                                      nullptr);
          test::check_close(dmma.to_host(), want, 1.0 / 128, 1e-3, 1e-5, "sparse_mla_decode_mma");
        }
      }
    }
  }
}

TEST_CASE("gpu latent_write stores the same bytes as the CPU for both record formats") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(40);
  const int64_t kv_lora = 512, rope = 64;
  for (auto fmt : {cpu::LatentFormat::bf16, cpu::LatentFormat::fp8}) {
    CAPTURE(int(fmt));
    const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
    const std::vector<int32_t> pages = {1, 2, 0};
    std::vector<uint8_t> arena(size_t(4 * 64) * rb);
    for (auto& v : arena) v = uint8_t(rng());  // untouched bytes must survive
    std::vector<int64_t> pos(170);
    std::iota(pos.begin(), pos.end(), 0);
    std::shuffle(pos.begin(), pos.end(), rng);
    pos.resize(90);
    const int64_t n_tok = int64_t(pos.size());
    std::vector<float> c = test::random_bf16(static_cast<size_t>(n_tok * kv_lora), rng);
    for (size_t i = 0; i < c.size(); ++i) c[i] *= std::ldexp(1.0f, int(i / 128 % 11) - 5);  // scales per block
    const auto pe = test::random_bf16(static_cast<size_t>(n_tok * rope), rng);
    DeviceBuffer<uint8_t> da(arena);
    DeviceBuffer<int32_t> dp(pages);
    DeviceBuffer<int64_t> dpos(pos);
    DeviceBuffer<float> dc(c), dpe(pe);
    for (int64_t t = 0; t < n_tok; ++t)
      cpu::latent_write(arena.data(), pages.data(), fmt, kv_lora, rope, pos[size_t(t)], c.data() + t * kv_lora,
                        pe.data() + t * rope);
    cuda::latent_write(da.get(), dp.get(), fmt, kv_lora, rope, n_tok, dpos.get(), dc.get(), dpe.get(), nullptr);
    test::check_exact(da.to_host(), arena, "latent cache bytes");
  }
}

TEST_CASE("gpu sparse_mla_decode of an empty selection gives zeros") {
  DSA_REQUIRE_GPU();
  const int64_t kv_lora = 128, rope = 64, n_heads = 3;
  const size_t rb = cpu::latent_record_bytes(cpu::LatentFormat::fp8, kv_lora, rope);
  DeviceBuffer<uint8_t> da(64 * rb);
  DeviceBuffer<int32_t> dp(std::vector<int32_t>{0}), ds(1);
  DeviceBuffer<float> dq(std::vector<float>(static_cast<size_t>(n_heads * kv_lora), 1.0f)), dpe(static_cast<size_t>(n_heads * rope));
  DeviceBuffer<float> dout(std::vector<float>(static_cast<size_t>(n_heads * kv_lora), 5.0f));
  const cuda::LatentCacheView view{da.get(), dp.get(), cpu::LatentFormat::fp8, kv_lora, rope, rb};
  cuda::sparse_mla_decode(dq.get(), dpe.get(), n_heads, view, ds.get(), 0, 0.1f, dout.get(), nullptr);
  for (float v : dout.to_host()) CHECK(v == 0.0f);
  DeviceBuffer<float> dsplit(std::vector<float>(static_cast<size_t>(n_heads * kv_lora), 5.0f));
  cuda::sparse_mla_decode_split(dq.get(), dpe.get(), n_heads, view, ds.get(), 0, 0.1f, dsplit.get(), nullptr);
  for (float v : dsplit.to_host()) CHECK(v == 0.0f);
  if (cuda::sparse_mla_decode_mma_supported(kv_lora, rope)) {
    DeviceBuffer<float> dmma(std::vector<float>(static_cast<size_t>(n_heads * kv_lora), 5.0f));
    cuda::sparse_mla_decode_mma(dq.get(), dpe.get(), n_heads, view, ds.get(), 0, 0.1f, dmma.get(), nullptr);
    for (float v : dmma.to_host()) CHECK(v == 0.0f);
  }
}

// The split-KV kernel's batched launch: queries with their own page tables and counts (one of them
// selecting nothing), more keys than the two-pass kernel's shared memory holds, 128 heads (16 head
// groups), each query against the CPU reference.
TEST_CASE("gpu sparse_mla_decode_split_batched matches the CPU reference per query, past the two-pass limit") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(43);
  const int64_t kv_lora = 512, rope = 64, n_heads = 128;
  const auto fmt = cpu::LatentFormat::fp8;
  const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
  const int64_t limit = cuda::sparse_mla_decode_max_sel(kv_lora, rope);
  REQUIRE(cuda::sparse_mla_decode_split_supported(kv_lora, rope));
  const int64_t seq = std::max<int64_t>(limit + 1000, 4096), n_pages = (seq + 63) / 64;
  // Two sequences in one pool: query 0 reads A (all of it), query 1 B (300 keys), query 2 A (none).
  std::vector<int32_t> pool(size_t(2 * n_pages));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<int32_t> tables(pool);  // [2 rows of n_pages]: A, then B
  std::vector<uint8_t> arena(size_t(2 * n_pages) * 64 * rb, 0);
  for (int s = 0; s < 2; ++s) {
    for (int64_t t = 0; t < (s == 0 ? seq : 300); ++t) {
      const auto c = test::random_bf16(size_t(kv_lora), rng, 1.0f + float(t % 3));
      const auto pe = test::random_bf16(size_t(rope), rng);
      cpu::latent_write(arena.data(), tables.data() + s * n_pages, fmt, kv_lora, rope, t, c.data(), pe.data());
    }
  }
  std::vector<int32_t> rows;  // per query: its sequence's table
  for (int s : {0, 1, 0}) rows.insert(rows.end(), tables.begin() + s * n_pages, tables.begin() + (s + 1) * n_pages);
  const std::vector<int32_t> n_sel{int32_t(seq), 300, 0};
  std::vector<int32_t> sel(size_t(3 * seq), -1);
  for (int q = 0; q < 2; ++q) {
    std::vector<int32_t> pos(size_t(q == 0 ? seq : 300));
    std::iota(pos.begin(), pos.end(), 0);
    std::shuffle(pos.begin(), pos.end(), rng);
    std::copy(pos.begin(), pos.end(), sel.begin() + q * seq);
  }
  const auto q_abs = test::random_bf16(size_t(3 * n_heads * kv_lora), rng, 0.1f);
  const auto q_pe = test::random_bf16(size_t(3 * n_heads * rope), rng, 0.3f);
  const float scale = 1.0f / std::sqrt(192.0f);
  DeviceBuffer<uint8_t> da(arena);
  DeviceBuffer<int32_t> dp(rows), ds(sel), dn(n_sel);
  DeviceBuffer<float> dqa(q_abs), dqp(q_pe), dout(std::vector<float>(q_abs.size(), 7.0f));
  const cuda::LatentCacheView view{da.get(), dp.get(), fmt, kv_lora, rope, rb};
  cuda::sparse_mla_decode_split_batched(dqa.get(), dqp.get(), n_heads, view, n_pages, 3, ds.get(), seq, dn.get(), seq,
                                        scale, dout.get(), nullptr);
  const auto got = dout.to_host();
  // The tensor-core kernel on the same queries (64-head blocks, the selections split and merged).
  const bool mma = cuda::sparse_mla_decode_mma_supported(kv_lora, rope);
  DeviceBuffer<float> dmma(std::vector<float>(q_abs.size(), 7.0f));
  if (mma)
    cuda::sparse_mla_decode_mma_batched(dqa.get(), dqp.get(), n_heads, view, n_pages, 3, ds.get(), seq, dn.get(), seq,
                                        scale, dmma.get(), nullptr);
  const auto got_mma = dmma.to_host();
  for (int q = 0; q < 3; ++q) {
    CAPTURE(q);
    const cpu::LatentCacheView host{arena.data(), rows.data() + q * n_pages, fmt, kv_lora, rope, rb};
    std::vector<float> want(size_t(n_heads * kv_lora));
    cpu::sparse_mla_decode(q_abs.data() + q * n_heads * kv_lora, q_pe.data() + q * n_heads * rope, n_heads, host,
                           sel.data() + q * seq, n_sel[size_t(q)], scale, want.data());
    const std::vector<float> mine(got.begin() + q * n_heads * kv_lora, got.begin() + (q + 1) * n_heads * kv_lora);
    const std::vector<float> tc(got_mma.begin() + q * n_heads * kv_lora,
                                got_mma.begin() + (q + 1) * n_heads * kv_lora);
    if (n_sel[size_t(q)] == 0) {
      CHECK(std::all_of(mine.begin(), mine.end(), [](float v) { return v == 0.0f; }));
      if (mma) CHECK(std::all_of(tc.begin(), tc.end(), [](float v) { return v == 0.0f; }));
    } else {
      test::check_close(mine, want, 1.0 / 128, 1e-3, 1e-5, "sparse_mla_decode_split_batched");
      if (mma) test::check_close(tc, want, 1.0 / 128, 1e-3, 1e-5, "sparse_mla_decode_mma_batched");
    }
  }
}

// The tensor-core kernel on a prefill chunk: 140 queries of one sequence (one page table), 64 heads,
// each query with its own selection and count: more blocks than SMs, so one split per query, the
// result normalised in the kernel. Each query against the CPU reference.
TEST_CASE("gpu sparse_mla_decode_mma_batched over a prefill chunk matches the CPU reference per query") {
  DSA_REQUIRE_GPU();
  const int64_t kv_lora = 512, rope = 64, n_heads = 64, n_q = 140, seq = 700, max_sel = 64;
  if (!cuda::sparse_mla_decode_mma_supported(kv_lora, rope)) return;  // before sm_80
  std::mt19937 rng(44);
  const auto fmt = cpu::LatentFormat::fp8;
  const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
  const int64_t n_pages = (seq + 63) / 64;
  std::vector<int32_t> pages(static_cast<size_t>(n_pages));
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  std::vector<uint8_t> arena(size_t(n_pages) * 64 * rb, 0);
  for (int64_t t = 0; t < seq; ++t) {
    const auto c = test::random_bf16(size_t(kv_lora), rng, 1.0f + float(t % 3));
    const auto pe = test::random_bf16(size_t(rope), rng);
    cpu::latent_write(arena.data(), pages.data(), fmt, kv_lora, rope, t, c.data(), pe.data());
  }
  std::vector<int32_t> n_sel(static_cast<size_t>(n_q)), sel(static_cast<size_t>(n_q * max_sel), -1);
  for (int64_t q = 0; q < n_q; ++q) {
    n_sel[size_t(q)] = int32_t(1 + q % max_sel);  // 1..64 keys
    std::vector<int32_t> pos(static_cast<size_t>(seq));
    std::iota(pos.begin(), pos.end(), 0);
    std::shuffle(pos.begin(), pos.end(), rng);
    std::copy(pos.begin(), pos.begin() + n_sel[size_t(q)], sel.begin() + q * max_sel);
  }
  const auto q_abs = test::random_bf16(size_t(n_q * n_heads * kv_lora), rng, 0.1f);
  const auto q_pe = test::random_bf16(size_t(n_q * n_heads * rope), rng, 0.3f);
  const float scale = 1.0f / std::sqrt(192.0f);
  DeviceBuffer<uint8_t> da(arena);
  DeviceBuffer<int32_t> dp(pages), ds(sel), dn(n_sel);
  DeviceBuffer<float> dqa(q_abs), dqp(q_pe), dout(q_abs.size());
  const cuda::LatentCacheView view{da.get(), dp.get(), fmt, kv_lora, rope, rb};
  cuda::sparse_mla_decode_mma_batched(dqa.get(), dqp.get(), n_heads, view, 0, n_q, ds.get(), max_sel, dn.get(),
                                      max_sel, scale, dout.get(), nullptr);
  const auto got = dout.to_host();
  const cpu::LatentCacheView host{arena.data(), pages.data(), fmt, kv_lora, rope, rb};
  for (int64_t q = 0; q < n_q; ++q) {
    CAPTURE(q);
    std::vector<float> want(size_t(n_heads * kv_lora));
    cpu::sparse_mla_decode(q_abs.data() + q * n_heads * kv_lora, q_pe.data() + q * n_heads * rope, n_heads, host,
                           sel.data() + q * max_sel, n_sel[size_t(q)], scale, want.data());
    const std::vector<float> mine(got.begin() + q * n_heads * kv_lora, got.begin() + (q + 1) * n_heads * kv_lora);
    test::check_close(mine, want, 1.0 / 128, 1e-3, 1e-5, "sparse_mla_decode_mma_batched prefill");
  }
}
