// Property tests of the CPU kernels where golden data is awkward: vector paths against the scalar
// references on random sizes with tails, top-k against a full sort, sparse attention against a
// naive dense computation, cache records against fp8_roundtrip, and the sampling helpers.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "kernel_test_support.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/indexer.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/sampling.hpp"
#include "kernels/cpu/simd.hpp"
#include "kernels/cpu/topk.hpp"

using namespace dsa;
using dsa::test::bf16_ulps;
using dsa::test::random_bf16;
using dsa::test::random_e4m3;

namespace {

// One bf16 step, or the fp32 accumulation bound when the sum cancels: |got - want| may reach
// k * 2^-24 * sum|terms| whatever the rounding of the result.
bool close_to(float got, float want, double abs_terms, int64_t k) {
  if (bf16_ulps(got, want) <= 1) return true;
  return std::fabs(double(got) - double(want)) <= double(k) * 0x1p-24 * abs_terms + 1e-30;
}

}  // namespace

TEST_CASE("parallel_for covers every index exactly once, also when nested") {
  for (int64_t n : {0, 1, 7, 64, 1000, 4097}) {
    for (int64_t grain : {1, 3, 100}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      cpu::parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          cpu::parallel_for(2, [&](int64_t b2, int64_t e2) {
            if (b2 == 0 && e2 >= 1) hits[size_t(i)].fetch_add(1);
          });
        }
      }, grain);
      bool once = true;
      for (auto& h : hits) once = once && h.load() == 1;
      CHECK(once);
    }
  }
}

// Sums of values spread over many binades, so any change in the order of the additions shows.
template <int N>
void check_hsum_many(std::mt19937& rng) {
  constexpr int W = cpu::simd::kWidth;
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> binade(-20, 20);
  float lanes[N][W];
  for (auto& row : lanes)
    for (float& x : row) x = std::ldexp(unit(rng), binade(rng));
  cpu::simd::vf v[N];
  for (int j = 0; j < N; ++j) v[j] = cpu::simd::load(lanes[j]);
  float got[N];
  cpu::simd::hsum_many<N>(v, got);
  for (int j = 0; j < N; ++j) {
    CAPTURE(N);
    CAPTURE(j);
    CHECK(std::bit_cast<uint32_t>(got[j]) == std::bit_cast<uint32_t>(cpu::simd::hsum(v[j])));
  }
}

TEST_CASE("hsum_many gives hsum of each vector, bit for bit, for 1 to 16 vectors") {
  std::mt19937 rng(31);
  for (int trial = 0; trial < 20; ++trial) {
    [&]<int... N>(std::integer_sequence<int, N...>) { (check_hsum_many<N + 1>(rng), ...); }
    (std::make_integer_sequence<int, 16>{});
  }
}

TEST_CASE("topk_positions on long rows (sampled threshold, vector pass) equals a full sort, NaN and -0 included") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int iter = 0; iter < 12; ++iter) {
    const int64_t n = 4096 + int64_t(rng() % 60000);
    const int64_t k = iter % 3 == 0 ? n - 1 : 1 + int64_t(rng() % 2048);
    std::vector<float> s(static_cast<size_t>(n));
    // Continuous scores, a block of equal ones at the top, positive and negative, some -inf.
    for (auto& v : s) v = iter % 2 ? normal(rng) : std::abs(normal(rng)) * 1e-3f;
    for (int64_t i = 0; i < 300; ++i) s[size_t(rng() % n)] = 7.5f;
    for (int64_t i = 0; i < 10; ++i) s[size_t(rng() % n)] = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < 10; ++i) s[size_t(rng() % n)] = std::numeric_limits<float>::quiet_NaN();
    for (int64_t i = 0; i < 10; ++i) s[size_t(rng() % n)] = iter % 2 ? -0.0f : 0.0f;
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    // NaN below everything; -0 below +0 (the kernel orders by bits); otherwise by value.
    const auto rank = [&](int32_t i) {
      return std::isnan(s[i]) ? -std::numeric_limits<double>::infinity()
             : s[i] == 0.0f   ? (std::signbit(s[i]) ? -1e-300 : 1e-300)
                              : double(s[i]);
    };
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      if (std::isnan(s[a]) != std::isnan(s[b])) return std::isnan(s[b]);
      return rank(a) > rank(b);
    });
    std::vector<int32_t> want(order.begin(), order.begin() + k);
    std::sort(want.begin(), want.end());
    std::vector<int32_t> got(static_cast<size_t>(k));
    cpu::topk_positions(s.data(), n, k, got.data());
    REQUIRE(got == want);
  }
}

TEST_CASE("topk_positions equals a full stable sort, ties to the lower position") {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 200; ++iter) {
    const int64_t n = 1 + int64_t(rng() % 3000);
    const int64_t k = 1 + int64_t(rng() % n);
    std::vector<float> s(static_cast<size_t>(n));
    const int levels = 1 + int(rng() % 50);  // few distinct values: many ties
    for (auto& v : s) v = float(int(rng() % levels)) - 10.0f;
    if (n > 3) {
      s[0] = -std::numeric_limits<float>::infinity();
      s[1] = std::numeric_limits<float>::quiet_NaN();
    }
    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    auto rank = [&](int32_t i) { return std::isnan(s[i]) ? -std::numeric_limits<double>::infinity() : double(s[i]); };
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      if (std::isnan(s[a]) != std::isnan(s[b])) return std::isnan(s[b]);
      return rank(a) > rank(b);
    });
    std::vector<int32_t> want(order.begin(), order.begin() + k);
    std::sort(want.begin(), want.end());
    std::vector<int32_t> got(static_cast<size_t>(k));
    cpu::topk_positions(s.data(), n, k, got.data());
    REQUIRE(got == want);
  }
}

TEST_CASE("matmul_fp8 (vector, threaded) agrees with the scalar reference on random shapes") {
  std::mt19937 rng(11);
  for (int64_t m : {1, 3, 5, 33}) {
    for (int64_t n : {1, 7, 130, 257}) {
      for (int64_t k : {128, 384}) {
        CAPTURE(m); CAPTURE(n); CAPTURE(k);
        const auto x = random_bf16(rng, size_t(m * k), 2.0f);
        const auto w = random_e4m3(rng, size_t(n * k));
        std::vector<float> s(size_t((n + 127) / 128 * (k / 128)));
        for (auto& v : s) v = std::ldexp(1.0f + float(rng() % 100) / 100.0f, -10);
        std::vector<float> y(size_t(m * n)), ys(y.size());
        cpu::matmul_fp8(x.data(), m, k, w.data(), s.data(), n, y.data());
        cpu::matmul_fp8_scalar(x.data(), k, m, k, w.data(), k, s.data(), k / 128, n, ys.data(), n);
        int64_t worst = 0;
        for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, bf16_ulps(y[i], ys[i]));
        CHECK(worst <= 1);
      }
    }
  }
}

TEST_CASE("matmul_fp8: a row's result does not depend on the rows batched with it, bit for bit") {
  // 70 rows: tiles of 64 and 6 rows, groups of 4 and the rest, the weights converted once per tile
  // and converted per vector for a row alone; 130 outputs: blocks of 4 rows and a tail of 2.
  std::mt19937 rng(13);
  const int64_t m = 70, n = 130, k = 512;
  const auto x = random_bf16(rng, size_t(m * k), 2.0f);
  const auto w = random_e4m3(rng, size_t(n * k));
  std::vector<float> s(size_t(2 * (k / 128)));
  for (auto& v : s) v = std::ldexp(1.0f + float(rng() % 100) / 100.0f, -10);
  std::vector<float> all(static_cast<size_t>(m * n)), one(static_cast<size_t>(n)), three(static_cast<size_t>(3 * n));
  cpu::matmul_fp8(x.data(), m, k, w.data(), s.data(), n, all.data());
  for (int64_t i = 0; i < m; ++i) {
    CAPTURE(i);
    cpu::matmul_fp8(x.data() + i * k, 1, k, w.data(), s.data(), n, one.data());
    CHECK(std::equal(one.begin(), one.end(), all.begin() + i * n));
  }
  cpu::matmul_fp8(x.data() + 5 * k, 3, k, w.data(), s.data(), n, three.data());
  CHECK(std::equal(three.begin(), three.end(), all.begin() + 5 * n));
}

TEST_CASE("matmul_fp8 on a row shard equals those rows of the whole product") {
  std::mt19937 rng(12);
  const int64_t m = 2, n = 300, k = 256;
  const auto x = random_bf16(rng, size_t(m * k));
  const auto w = random_e4m3(rng, size_t(n * k));
  std::vector<float> s(size_t(3 * 2));
  for (auto& v : s) v = std::ldexp(1.0f, -int(rng() % 8) - 6);
  std::vector<float> full(size_t(m * n)), shard(size_t(m * 150));
  cpu::matmul_fp8(x.data(), m, k, w.data(), s.data(), n, full.data());
  cpu::matmul_fp8(x.data(), k, m, k, w.data() + 128 * k, k, s.data() + 1 * 2, 2, 150, shard.data(), 150);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < 150; ++j) CHECK(shard[size_t(i * 150 + j)] == full[size_t(i * n + 128 + j)]);
}

TEST_CASE("matmul_fp8_routed and moe_owned_rows: each owned pair's row is matmul_fp8 of its expert, others zero") {
  std::mt19937 rng(15);
  // 3 tokens x 4 slots over 6 experts [n = 130, k = 256]; rank 1 of 2 holds the odd experts.
  const int64_t S = 3, K = 4, E = 6, n = 130, k = 256;
  const auto x = random_bf16(rng, size_t(S * k), 2.0f);
  std::vector<std::vector<uint8_t>> w;
  std::vector<std::vector<float>> sc;
  std::vector<cpu::Fp8Matrix> table(E);
  for (int64_t e = 0; e < E; ++e) {
    w.push_back(random_e4m3(rng, size_t(n * k)));
    sc.emplace_back(size_t(2 * 2));
    for (auto& v : sc.back()) v = std::ldexp(1.0f, -int(rng() % 8) - 6);
  }
  for (int64_t e = 0; e < E; ++e) table[size_t(e)] = {w[size_t(e)].data(), sc[size_t(e)].data()};
  const std::vector<int32_t> idx = {5, 0, 3, 2, 1, 1, 4, 0, 2, 3, 5, 4};  // expert 1 twice for token 1
  for (int rank : {0, 1}) {
    CAPTURE(rank);
    std::vector<float> y(size_t(S * K * n), -7.0f);
    cpu::matmul_fp8_routed(x.data(), k, K, idx.data(), S * K, rank, 2, table.data(), k, n, y.data(), n);
    std::vector<int32_t> rows(size_t(S * K));
    cpu::moe_owned_rows(idx.data(), S * K, rank, 2, rows.data());
    for (int64_t p = 0; p < S * K; ++p) {
      CAPTURE(p);
      const int32_t e = idx[size_t(p)];
      std::vector<float> want(size_t(n), 0.0f);
      if (e % 2 == rank) {
        // The expert's rows as one group with every pair routed to it: the grouped path's numbers.
        std::vector<float> group_x, group_y;
        int64_t at = -1, m = 0;
        for (int64_t q = 0; q < S * K; ++q) {
          if (idx[size_t(q)] != e) continue;
          if (q == p) at = m;
          group_x.insert(group_x.end(), x.begin() + (q / K) * k, x.begin() + (q / K + 1) * k);
          ++m;
        }
        group_y.resize(size_t(m * n));
        cpu::matmul_fp8(group_x.data(), m, k, w[size_t(e)].data(), sc[size_t(e)].data(), n, group_y.data());
        want.assign(group_y.begin() + at * n, group_y.begin() + (at + 1) * n);
      }
      CHECK(std::vector<float>(y.begin() + p * n, y.begin() + (p + 1) * n) == want);
      CHECK(rows[size_t(p)] == (e % 2 == rank ? int32_t(p) : -1));
    }
  }
}

TEST_CASE("matmul_fp8_grouped: each group's rows, read through the row map, as matmul_fp8 of its expert") {
  std::mt19937 rng(16);
  // 7 quantised rows, 5 groups [n = 130, k = 384]: group 1 empty (no expert), group 3 empty with one;
  // 9 grouped rows reading the quantised rows in another order, row 2 twice (two experts of a token).
  const int64_t Q = 7, G = 5, n = 130, k = 384, n_kb = k / 128;
  const auto x = random_bf16(rng, size_t(Q * k), 3.0f);
  std::vector<uint8_t> codes(size_t(Q * k));
  std::vector<float> scales(size_t(Q * n_kb));
  for (int64_t q = 0; q < Q; ++q)
    cpu::act_quant(x.data() + q * k, k, 128, codes.data() + q * k, scales.data() + q * n_kb);
  std::vector<std::vector<uint8_t>> w;
  std::vector<std::vector<float>> sc;
  std::vector<cpu::Fp8Matrix> table(G);
  for (int64_t g = 0; g < G; ++g) {
    w.push_back(random_e4m3(rng, size_t(n * k)));
    sc.emplace_back(size_t(2 * n_kb));
    for (auto& v : sc.back()) v = std::ldexp(1.0f, -int(rng() % 8) - 6);
    if (g != 1) table[size_t(g)] = {w.back().data(), sc.back().data()};
  }
  const auto check = [&](const std::vector<int32_t>& first, const int32_t* row_map) {
    const int64_t rows = first.back();
    std::vector<float> y(size_t((rows + 1) * n), -7.0f);  // one row past the groups: untouched
    cpu::matmul_fp8_grouped(codes.data(), scales.data(), k, row_map, first.data(), G, table.data(), n, y.data(), n);
    for (int64_t g = 0; g < G; ++g) {
      CAPTURE(g);
      const int64_t r0 = first[size_t(g)], m = first[size_t(g) + 1] - r0;
      if (m == 0) continue;
      std::vector<float> gx, want(size_t(m * n));
      for (int64_t r = r0; r < r0 + m; ++r) {
        const int64_t q = row_map ? row_map[r] : r;
        gx.insert(gx.end(), x.begin() + q * k, x.begin() + (q + 1) * k);
      }
      cpu::matmul_fp8(gx.data(), m, k, w[size_t(g)].data(), sc[size_t(g)].data(), n, want.data());
      CHECK(std::vector<float>(y.begin() + r0 * n, y.begin() + (r0 + m) * n) == want);
    }
    CHECK(std::count(y.begin() + rows * n, y.end(), -7.0f) == n);
  };
  const std::vector<int32_t> row_map = {2, 0, 5, 6, 2, 1, 3, 4, 0};
  check({0, 3, 3, 7, 7, 9}, row_map.data());
  check({0, 2, 2, 5, 5, 7}, nullptr);
}

TEST_CASE("matmul_bf16 (vector, threaded) agrees with the scalar reference, tails included") {
  std::mt19937 rng(13);
  for (int64_t m : {1, 2, 6, 40}) {
    for (int64_t n : {1, 5, 67}) {
      for (int64_t k : {1, 17, 200, 512}) {
        CAPTURE(m); CAPTURE(n); CAPTURE(k);
        const auto x = random_bf16(rng, size_t(m * k));
        const auto wf = random_bf16(rng, size_t(n * k), 0.1f);
        std::vector<uint16_t> w(wf.size());
        for (size_t i = 0; i < w.size(); ++i) w[i] = float_to_bf16(wf[i]);
        std::vector<float> y(size_t(m * n)), ys(y.size());
        cpu::matmul_bf16(x.data(), m, k, w.data(), n, y.data(), true);
        cpu::matmul_bf16_scalar(x.data(), k, m, k, w.data(), k, n, ys.data(), n, true);
        bool ok = true;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double terms = 0.0;
            for (int64_t c = 0; c < k; ++c) terms += std::fabs(double(x[size_t(i * k + c)]) * wf[size_t(j * k + c)]);
            ok = ok && close_to(y[size_t(i * n + j)], ys[size_t(i * n + j)], terms, k);
          }
        CHECK(ok);
      }
    }
  }
}

TEST_CASE("matmul_bf16_batched gives each product of the batch as a separate matmul_bf16, bit for bit") {
  std::mt19937 rng(14);
  // The absorbed MLA layout: x [S, H, nope | rope] (only nope read), w [H, out, nope], y [S, H, out].
  const int64_t S = 3, H = 5, nope = 32, rope = 16, out = 40, dqk = nope + rope;
  const auto x = random_bf16(rng, size_t(S * H * dqk));
  const auto wf = random_bf16(rng, size_t(H * out * nope), 0.1f);
  std::vector<uint16_t> w(wf.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = float_to_bf16(wf[i]);
  std::vector<float> y(size_t(S * H * out), -1.0f), want(y.size(), -2.0f);
  cpu::matmul_bf16_batched(x.data(), H * dqk, dqk, S, nope, w.data(), nope, out * nope, out, y.data(), H * out, out, H,
                           true);
  for (int64_t h = 0; h < H; ++h) {
    cpu::matmul_bf16(x.data() + h * dqk, H * dqk, S, nope, w.data() + h * out * nope, nope, out, want.data() + h * out,
                     H * out, true);
  }
  CHECK(y == want);
}

TEST_CASE("indexer_scores (vector, threaded) agrees with the scalar reference on partial pages") {
  std::mt19937 rng(17);
  for (int64_t dim : {64, 128}) {
    for (int64_t heads : {1, 3, 64}) {
      const int64_t n_max = 300;
      const int64_t n_pages = (n_max + 63) / 64;
      std::vector<int32_t> pages(static_cast<size_t>(n_pages));
      for (int64_t i = 0; i < n_pages; ++i) pages[size_t(i)] = int32_t((i * 3 + 1) % n_pages);
      std::vector<uint8_t> arena(size_t(n_pages) * cpu::indexer_page_bytes(dim));
      for (int64_t t = 0; t < n_max; ++t) {
        const auto kv = random_bf16(rng, size_t(dim));
        cpu::indexer_write(arena.data(), pages.data(), dim, t, kv.data());
      }
      const cpu::IndexerCacheView view{arena.data(), pages.data(), dim, cpu::indexer_page_bytes(dim)};
      const std::vector<int64_t> n_keys = {1, 63, 64, 65, 300};
      const int64_t n_q = int64_t(n_keys.size());
      std::vector<uint8_t> q(size_t(n_q * heads * dim));
      for (int64_t i = 0; i < n_q * heads; ++i) {
        const auto qv = random_bf16(rng, size_t(dim));
        float sc = 0;
        cpu::act_quant(qv.data(), dim, dim, q.data() + i * dim, &sc);
      }
      const auto w = random_bf16(rng, size_t(n_q * heads), 0.01f);
      const float sentinel = 12345.0f;
      std::vector<float> got(size_t(n_q * n_max), sentinel), want(got.size(), sentinel);
      cpu::indexer_scores(q.data(), w.data(), n_q, heads, view, n_keys.data(), got.data(), n_max);
      cpu::indexer_scores_scalar(q.data(), w.data(), n_q, heads, view, n_keys.data(), want.data(), n_max);
      for (int64_t i = 0; i < n_q; ++i) {
        double scale = 0.0;
        for (int64_t s = 0; s < n_keys[size_t(i)]; ++s) scale = std::max(scale, std::fabs(double(want[size_t(i * n_max + s)])));
        bool ok = true;
        for (int64_t s = 0; s < n_max; ++s) {
          const float g = got[size_t(i * n_max + s)], e = want[size_t(i * n_max + s)];
          ok = ok && (s < n_keys[size_t(i)] ? std::fabs(double(g) - e) <= 1e-5 * scale : g == sentinel);
        }
        CAPTURE(dim); CAPTURE(heads); CAPTURE(i);
        CHECK(ok);
      }
    }
  }
}

TEST_CASE("indexer_scores reads every e4m3 key code exactly (normals, subnormals, zeros, both signs)") {
  // One page whose codes run through all 256 (the NaN codes 0x7f and 0xff as zero), scale 1. Two
  // heads of weight 1 with queries +e_d and -e_d score key s with relu(k[s][d]) + relu(-k[s][d]) =
  // |k[s][d]|, exact in fp32. Full and partial blocks of keys, widths that are and are not a
  // multiple of 64 (the transposed and the gathered tiles).
  for (const auto& [dim, keys] : {std::pair<int64_t, int64_t>{64, 64}, {128, 64}, {64, 40}, {96, 64}, {32, 17}}) {
    CAPTURE(dim);
    CAPTURE(keys);
    std::vector<uint8_t> arena(cpu::indexer_page_bytes(dim));
    for (int64_t s = 0; s < keys; ++s)
      for (int64_t d = 0; d < dim; ++d) {
        const uint8_t code = uint8_t((s * dim + d * 5) % 256);
        arena[size_t(s * dim + d)] = (code & 0x7f) == 0x7f ? 0 : code;
      }
    for (int64_t s = 0; s < keys; ++s) {
      const float one = 1.0f;
      std::memcpy(arena.data() + cpu::kIndexerPageTokens * dim + s * int64_t(sizeof(float)), &one, sizeof(float));
    }
    const int32_t page = 0;
    const cpu::IndexerCacheView view{arena.data(), &page, dim, cpu::indexer_page_bytes(dim)};
    const uint8_t plus_one = float_to_fp8_e4m3(1.0f), minus_one = float_to_fp8_e4m3(-1.0f);
    const std::vector<float> w = {1.0f, 1.0f};
    std::vector<float> got(static_cast<size_t>(keys));
    int64_t wrong = 0;
    for (int64_t d = 0; d < dim; ++d) {
      std::vector<uint8_t> q(size_t(2 * dim), 0);
      q[size_t(d)] = plus_one;
      q[size_t(dim + d)] = minus_one;
      cpu::indexer_scores(q.data(), w.data(), 1, 2, view, &keys, got.data(), keys);
      for (int64_t s = 0; s < keys; ++s)
        wrong += got[size_t(s)] != std::fabs(fp8_e4m3_to_float(arena[size_t(s * dim + d)]));
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("latent records: sizes, and both formats read back exactly fp8_roundtrip(c_kv)") {
  CHECK(cpu::latent_record_bytes(cpu::LatentFormat::fp8, 512, 64) == 656);
  CHECK(cpu::latent_record_bytes(cpu::LatentFormat::bf16, 512, 64) == 1152);
  CHECK(cpu::indexer_page_bytes(128) == 8448);
  std::mt19937 rng(19);
  const int64_t kv_lora = 512, rope = 64, n = 130;
  for (auto fmt : {cpu::LatentFormat::bf16, cpu::LatentFormat::fp8}) {
    const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
    const std::vector<int32_t> pages = {2, 0, 1};
    std::vector<uint8_t> arena(3 * 64 * rb);
    std::vector<std::vector<float>> c(static_cast<size_t>(n)), pe(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) {
      c[size_t(t)] = random_bf16(rng, size_t(kv_lora), t % 7 == 0 ? 1e-6f : 3.0f);
      pe[size_t(t)] = random_bf16(rng, size_t(rope));
      cpu::latent_write(arena.data(), pages.data(), fmt, kv_lora, rope, t, c[size_t(t)].data(), pe[size_t(t)].data());
    }
    const cpu::LatentCacheView view{arena.data(), pages.data(), fmt, kv_lora, rope, rb};
    bool ok = true;
    for (int64_t t = 0; t < n; ++t) {
      std::vector<float> rt(static_cast<size_t>(kv_lora)), got_c(rt.size()), got_pe(static_cast<size_t>(rope));
      cpu::fp8_roundtrip(c[size_t(t)].data(), kv_lora, 128, rt.data());
      cpu::latent_read(view, t, got_c.data(), got_pe.data());
      ok = ok && got_c == rt && got_pe == pe[size_t(t)];
    }
    CHECK(ok);
  }
}

TEST_CASE("sparse_mla_decode equals a naive dense computation over the selected keys") {
  std::mt19937 rng(23);
  const int64_t kv_lora = 256, rope = 64, n = 200, heads = 16;
  for (auto fmt : {cpu::LatentFormat::bf16, cpu::LatentFormat::fp8}) {
    const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
    const std::vector<int32_t> pages = {3, 1, 0, 2};
    std::vector<uint8_t> arena(4 * 64 * rb);
    for (int64_t t = 0; t < n; ++t) {
      const auto c = random_bf16(rng, size_t(kv_lora));
      const auto pe = random_bf16(rng, size_t(rope));
      cpu::latent_write(arena.data(), pages.data(), fmt, kv_lora, rope, t, c.data(), pe.data());
    }
    const cpu::LatentCacheView view{arena.data(), pages.data(), fmt, kv_lora, rope, rb};
    const auto q_abs = random_bf16(rng, size_t(heads * kv_lora), 0.2f);
    const auto q_pe = random_bf16(rng, size_t(heads * rope), 0.2f);
    for (int64_t n_sel : {0, 1, 77, 200}) {
      std::vector<int32_t> sel(static_cast<size_t>(n));
      std::iota(sel.begin(), sel.end(), 0);
      std::shuffle(sel.begin(), sel.end(), rng);  // any order
      sel.resize(static_cast<size_t>(n_sel));
      const float scale = 0.135f;
      std::vector<float> o(size_t(heads * kv_lora), -1.0f);
      cpu::sparse_mla_decode(q_abs.data(), q_pe.data(), heads, view, sel.data(), n_sel, scale, o.data());
      // Naive: decode each selected record, fp64 scores and softmax, fp64 weighted sum.
      std::vector<float> c(static_cast<size_t>(kv_lora)), pe(static_cast<size_t>(rope));
      std::vector<std::vector<float>> keys;
      std::vector<std::vector<float>> pes;
      for (auto t : sel) {
        cpu::latent_read(view, t, c.data(), pe.data());
        keys.push_back(c);
        pes.push_back(pe);
      }
      int64_t worst = 0;
      for (int64_t h = 0; h < heads; ++h) {
        std::vector<double> p(static_cast<size_t>(n_sel));
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < n_sel; ++j) {
          double s = 0;
          for (int64_t i = 0; i < kv_lora; ++i) s += double(q_abs[size_t(h * kv_lora + i)]) * keys[size_t(j)][size_t(i)];
          for (int64_t i = 0; i < rope; ++i) s += double(q_pe[size_t(h * rope + i)]) * pes[size_t(j)][size_t(i)];
          p[size_t(j)] = s * scale;
          mx = std::max(mx, p[size_t(j)]);
        }
        for (auto& v : p) sum += (v = std::exp(v - mx));
        for (int64_t i = 0; i < kv_lora; ++i) {
          double acc = 0;
          for (int64_t j = 0; j < n_sel; ++j) acc += p[size_t(j)] / sum * keys[size_t(j)][size_t(i)];
          worst = std::max(worst, bf16_ulps(o[size_t(h * kv_lora + i)], round_bf16(float(acc))));
        }
      }
      CAPTURE(n_sel);
      CHECK(worst <= 1);
    }
  }
}

TEST_CASE("moe_route with one group and no bias is the plain top-k of the sigmoid scores") {
  std::mt19937 rng(29);
  for (int iter = 0; iter < 20; ++iter) {
    const auto logits = random_bf16(rng, 64, 2.0f);
    const std::vector<float> bias(64, 0.0f);
    int32_t idx[6];
    float w[6];
    cpu::moe_route(logits.data(), bias.data(), 64, 1, 1, 6, true, 2.5f, idx, w);
    std::vector<int32_t> order(64);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    double sum = 0;
    for (int i = 0; i < 6; ++i) {
      CHECK(idx[i] == order[size_t(i)]);
      sum += w[i];
    }
    CHECK(sum == doctest::Approx(2.5).epsilon(1e-6));
    cpu::moe_route(logits.data(), bias.data(), 64, 1, 1, 6, false, 1.0f, idx, w);
    CHECK(w[0] == doctest::Approx(1.0 / (1.0 + std::exp(-double(logits[size_t(order[0])])))).epsilon(1e-6));
  }
}

TEST_CASE("sampling helpers: softmax, argmax, top-k and top-p masks, inverse-CDF draw") {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1.0f, 3.0f, 3.0f, -inf, 0.5f};
  CHECK(cpu::argmax(x.data(), 5) == 1);
  std::vector<float> nan_first = {std::nanf(""), 2.0f, 1.0f};
  CHECK(cpu::argmax(nan_first.data(), 3) == 1);
  std::vector<float> p(5);
  cpu::softmax(x.data(), 5, p.data());
  CHECK(std::accumulate(p.begin(), p.end(), 0.0) == doctest::Approx(1.0));
  CHECK(p[3] == 0.0f);
  CHECK(p[1] == p[2]);
  std::vector<float> big = {1000.0f, 999.0f};
  cpu::softmax(big.data(), 2, big.data());
  CHECK(big[0] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));

  auto masked = x;
  cpu::top_k_mask(masked.data(), 5, 2);
  CHECK(masked == std::vector<float>{-inf, 3.0f, 3.0f, -inf, -inf});
  masked = x;
  cpu::top_k_mask(masked.data(), 5, 1);  // tie: the lower index stays
  CHECK(masked == std::vector<float>{-inf, 3.0f, -inf, -inf, -inf});

  std::vector<float> probs = {0.1f, 0.5f, 0.3f, 0.1f};
  cpu::top_p_mask(probs.data(), 4, 0.75f);  // 0.5 + 0.3 reaches 0.75
  CHECK(probs[0] == 0.0f);
  CHECK(probs[3] == 0.0f);
  CHECK(probs[1] == doctest::Approx(0.625));
  CHECK(probs[2] == doctest::Approx(0.375));
  std::vector<float> one = {0.2f, 0.8f};
  cpu::top_p_mask(one.data(), 2, 0.01f);  // the most probable token always stays
  CHECK(one == std::vector<float>{0.0f, 1.0f});

  const std::vector<float> d = {0.0f, 0.25f, 0.0f, 0.75f, 0.0f};
  CHECK(cpu::sample_from_probs(d.data(), 5, 0.0f) == 1);
  CHECK(cpu::sample_from_probs(d.data(), 5, 0.2499f) == 1);
  CHECK(cpu::sample_from_probs(d.data(), 5, 0.25f) == 3);
  CHECK(cpu::sample_from_probs(d.data(), 5, 0.999999f) == 3);
}
