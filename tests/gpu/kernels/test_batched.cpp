// The batched launches (several queries per launch, each with its own page table, selection and
// count) against one launch per query: the same kernel per query, so bit for bit. The single-query
// launches are checked against the CPU reference in test_attention.cpp and test_indexer_topk.cpp.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/indexer.hpp"
#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/indexer.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;
using dsa::test::DeviceBuffer;

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Two sequences' page tables over one pool of 24 pages, as the rows of a [3][max_pages] table:
// queries 0 and 2 read sequence A (700 tokens), query 1 sequence B (130 tokens).
struct Tables {
  static constexpr int64_t kMaxPages = 12;
  std::vector<int32_t> a, b, rows;
  explicit Tables(std::mt19937& rng) {
    std::vector<int32_t> pool(24);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    a.assign(pool.begin(), pool.begin() + 11);
    b.assign(pool.begin() + 11, pool.begin() + 14);
    for (const auto* t : {&a, &b, &a}) {
      std::vector<int32_t> row(kMaxPages, -1);
      std::copy(t->begin(), t->end(), row.begin());
      rows.insert(rows.end(), row.begin(), row.end());
    }
  }
};

}  // namespace

TEST_CASE("gpu sparse_mla_decode_batched equals one launch per query, bit for bit") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(51);
  const int64_t kv_lora = 512, rope = 64, n_heads = 6, stride = 400;
  const auto fmt = cpu::LatentFormat::fp8;
  const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
  Tables t(rng);
  std::vector<uint8_t> arena(24 * 64 * rb, 0);
  for (const auto* pages : {&t.a, &t.b}) {
    const int64_t len = pages == &t.a ? 700 : 130;
    for (int64_t p = 0; p < len; ++p) {
      const auto c = test::random_bf16(size_t(kv_lora), rng);
      const auto pe = test::random_bf16(size_t(rope), rng);
      cpu::latent_write(arena.data(), pages->data(), fmt, kv_lora, rope, p, c.data(), pe.data());
    }
  }
  const std::vector<int32_t> n_sel{400, 130, 0};  // the last query selects nothing: zeros
  std::vector<int32_t> sel(3 * stride, -1);
  for (int q = 0; q < 2; ++q) {
    std::vector<int32_t> pos(q == 0 ? 700 : 130);
    std::iota(pos.begin(), pos.end(), 0);
    std::shuffle(pos.begin(), pos.end(), rng);
    std::copy(pos.begin(), pos.begin() + n_sel[q], sel.begin() + q * stride);
  }
  const auto q_abs = test::random_bf16(size_t(3 * n_heads * kv_lora), rng, 0.1f);
  const auto q_pe = test::random_bf16(size_t(3 * n_heads * rope), rng, 0.3f);
  DeviceBuffer<uint8_t> da(arena);
  DeviceBuffer<int32_t> dpages(t.rows), dsel(sel), dn(n_sel);
  DeviceBuffer<float> dqa(q_abs), dqp(q_pe), dout(std::vector<float>(q_abs.size(), 7.0f)), done(q_abs.size());
  const cuda::LatentCacheView view{da.get(), dpages.get(), fmt, kv_lora, rope, rb};
  cuda::sparse_mla_decode_batched(dqa.get(), dqp.get(), n_heads, view, Tables::kMaxPages, 3, dsel.get(), stride,
                                  dn.get(), 400, 0.07f, dout.get(), nullptr);
  for (int q = 0; q < 3; ++q) {
    const cuda::LatentCacheView one{da.get(), dpages.get() + q * Tables::kMaxPages, fmt, kv_lora, rope, rb};
    cuda::sparse_mla_decode(dqa.get() + q * n_heads * kv_lora, dqp.get() + q * n_heads * rope, n_heads, one,
                            dsel.get() + q * stride, n_sel[q], 0.07f, done.get() + q * n_heads * kv_lora, nullptr);
  }
  const auto got = dout.to_host(), want = done.to_host();
  CHECK(same_bits(got, want));
  CHECK(std::all_of(got.begin() + 2 * n_heads * kv_lora, got.end(), [](float v) { return v == 0.0f; }));
}

TEST_CASE("gpu indexer_scores_batched equals one launch per query, bit for bit, rows left past each count") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(52);
  const int64_t dim = 128, n_heads = 64, ld = 768;
  const size_t page_bytes = cpu::indexer_page_bytes(dim);
  Tables t(rng);
  std::vector<uint8_t> arena(24 * page_bytes, 0);
  for (const auto* pages : {&t.a, &t.b}) {
    const int64_t len = pages == &t.a ? 700 : 130;
    for (int64_t p = 0; p < len; ++p) {
      const auto k = test::random_bf16(size_t(dim), rng);
      cpu::indexer_write(arena.data(), pages->data(), dim, p, k.data());
    }
  }
  const std::vector<int32_t> n_keys{700, 130, 65};
  std::vector<uint8_t> q(3 * n_heads * dim);
  for (auto& c : q) c = uint8_t(rng() % 126);  // positive e4m3 codes below NaN
  std::vector<float> w(3 * n_heads);
  for (auto& v : w) v = float(int(rng() % 200) - 100) / 128.0f;
  DeviceBuffer<uint8_t> da(arena), dq(q);
  DeviceBuffer<int32_t> dpages(t.rows), dn(n_keys);
  DeviceBuffer<float> dw(w), dout(std::vector<float>(3 * ld, -9.0f)), done(std::vector<float>(3 * ld, -9.0f));
  const cuda::IndexerCacheView view{da.get(), dpages.get(), dim, page_bytes};
  cuda::indexer_scores_batched(dq.get(), dw.get(), n_heads, view, Tables::kMaxPages, 3, dn.get(), 700, dout.get(), ld,
                               nullptr);
  for (int i = 0; i < 3; ++i) {
    const cuda::IndexerCacheView one{da.get(), dpages.get() + i * Tables::kMaxPages, dim, page_bytes};
    cuda::indexer_scores(dq.get() + i * n_heads * dim, dw.get() + i * n_heads, n_heads, one, n_keys[i],
                         done.get() + i * ld, nullptr);
  }
  const auto got = dout.to_host(), want = done.to_host();
  CHECK(same_bits(got, want));
  CHECK(got[size_t(ld + 130)] == -9.0f);  // past query 1's keys: untouched
}

TEST_CASE("gpu indexer_scores_batched over one page table (a prefill chunk) equals one launch per query") {
  // Queries of one sequence share each page's key load, 8 to a block: 21 causal queries at
  // positions 115..135 (counts 116..136, across the 128-key page boundary, the last group short).
  DSA_REQUIRE_GPU();
  std::mt19937 rng(53);
  const int64_t dim = 128, n_heads = 64, n_q = 21, first = 116, max_keys = first + n_q - 1, ld = 192;
  const size_t page_bytes = cpu::indexer_page_bytes(dim);
  Tables t(rng);
  std::vector<uint8_t> arena(24 * page_bytes, 0);
  for (int64_t p = 0; p < max_keys; ++p) {
    const auto k = test::random_bf16(size_t(dim), rng);
    cpu::indexer_write(arena.data(), t.a.data(), dim, p, k.data());
  }
  std::vector<int32_t> n_keys(static_cast<size_t>(n_q));
  std::iota(n_keys.begin(), n_keys.end(), int32_t(first));
  std::vector<uint8_t> q(size_t(n_q * n_heads * dim));
  for (auto& c : q) c = uint8_t(rng() % 126);
  std::vector<float> w(size_t(n_q * n_heads));
  for (auto& v : w) v = float(int(rng() % 200) - 100) / 128.0f;
  DeviceBuffer<uint8_t> da(arena), dq(q);
  DeviceBuffer<int32_t> dpages(t.a), dn(n_keys);
  DeviceBuffer<float> dw(w), dout(std::vector<float>(size_t(n_q * ld), -9.0f)),
      done(std::vector<float>(size_t(n_q * ld), -9.0f));
  const cuda::IndexerCacheView view{da.get(), dpages.get(), dim, page_bytes};
  cuda::indexer_scores_batched(dq.get(), dw.get(), n_heads, view, 0, n_q, dn.get(), max_keys, dout.get(), ld, nullptr);
  for (int64_t i = 0; i < n_q; ++i)
    cuda::indexer_scores(dq.get() + i * n_heads * dim, dw.get() + i * n_heads, n_heads, view, n_keys[size_t(i)],
                         done.get() + i * ld, nullptr);
  const auto got = dout.to_host(), want = done.to_host();
  CHECK(same_bits(got, want));
  for (int64_t i = 0; i < n_q; ++i) {
    CAPTURE(i);
    CHECK(got[size_t(i * ld + n_keys[size_t(i)])] == -9.0f);  // past the query's keys: untouched
    CHECK(got[size_t(i * ld + n_keys[size_t(i)] - 1)] != -9.0f);
  }
}
