// GPU indexer scores over the paged FP8 cache and the radix top-k, against the CPU reference.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/indexer.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/topk.hpp"
#include "kernels/cuda/indexer.hpp"
#include "kernels/cuda/topk.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;
using dsa::test::DeviceBuffer;

TEST_CASE("gpu indexer_write stores the same bytes as the CPU") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(30);
  for (int64_t dim : {128, 64}) {
    CAPTURE(dim);
    const size_t page_bytes = cpu::indexer_page_bytes(dim);
    const std::vector<int32_t> pages = {3, 0, 2};  // 192 slots over a pool of 4 pages
    std::vector<uint8_t> arena(4 * page_bytes);
    for (auto& v : arena) v = uint8_t(rng());  // untouched bytes must survive
    // Tokens in shuffled order, leaving slots empty and the last page partial.
    std::vector<int64_t> pos(150);
    std::iota(pos.begin(), pos.end(), 0);
    std::shuffle(pos.begin(), pos.end(), rng);
    pos.resize(100);
    const int64_t n_tok = int64_t(pos.size());
    std::vector<float> k = test::random_bf16(static_cast<size_t>(n_tok * dim), rng);
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t d = 0; d < dim; ++d) k[size_t(t * dim + d)] *= std::ldexp(1.0f, int(t % 13) - 6);
    DeviceBuffer<uint8_t> da(arena);
    DeviceBuffer<int32_t> dp(pages);
    DeviceBuffer<int64_t> dpos(pos);
    DeviceBuffer<float> dk(k);
    for (int64_t t = 0; t < n_tok; ++t)
      cpu::indexer_write(arena.data(), pages.data(), dim, pos[size_t(t)], k.data() + t * dim);
    cuda::indexer_write(da.get(), dp.get(), dim, n_tok, dpos.get(), dk.get(), nullptr);
    test::check_exact(da.to_host(), arena, "indexer cache bytes");
  }
}

TEST_CASE("gpu indexer_scores matches the CPU scalar reference over partial pages") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(31);
  struct Case {
    int64_t n_heads, dim, n_keys;
  };
  for (const Case& c : {Case{64, 128, 64 * 5 + 17}, Case{7, 64, 64}, Case{128, 128, 200}, Case{3, 16, 1}}) {
    CAPTURE(c.n_heads);
    CAPTURE(c.dim);
    CAPTURE(c.n_keys);
    const int64_t n_pages = (c.n_keys + 63) / 64;
    const size_t page_bytes = cpu::indexer_page_bytes(c.dim);
    // Pages scattered over a larger pool in shuffled order.
    std::vector<int32_t> pages(static_cast<size_t>(n_pages));
    std::iota(pages.begin(), pages.end(), 0);
    std::shuffle(pages.begin(), pages.end(), rng);
    for (auto& p : pages) p = 2 * p + 1;
    std::vector<uint8_t> arena(static_cast<size_t>(2 * n_pages + 2) * page_bytes, 0);
    for (int64_t t = 0; t < c.n_keys; ++t) {
      const auto k = test::random_bf16(static_cast<size_t>(c.dim), rng, 0.5f + float(t % 5));
      cpu::indexer_write(arena.data(), pages.data(), c.dim, t, k.data());
    }
    const auto q = test::random_bf16(static_cast<size_t>(c.n_heads * c.dim), rng);
    std::vector<uint8_t> q_codes(q.size());
    std::vector<float> q_scales(static_cast<size_t>(c.n_heads));
    cpu::act_quant(q.data(), int64_t(q.size()), c.dim, q_codes.data(), q_scales.data());
    auto w = test::random_bf16(static_cast<size_t>(c.n_heads), rng);
    for (int64_t h = 0; h < c.n_heads; ++h) w[h] *= q_scales[h] / std::sqrt(float(c.n_heads * c.dim));

    const cpu::IndexerCacheView host_view{arena.data(), pages.data(), c.dim, page_bytes};
    const int64_t ld = c.n_keys + 5;  // entries past n_keys must stay untouched
    std::vector<float> want(static_cast<size_t>(ld), -7.0f);
    cpu::indexer_scores_scalar(q_codes.data(), w.data(), 1, c.n_heads, host_view, &c.n_keys, want.data(), ld);

    DeviceBuffer<uint8_t> da(arena), dq(q_codes);
    DeviceBuffer<int32_t> dp(pages);
    DeviceBuffer<float> dw(w), ds(std::vector<float>(static_cast<size_t>(ld), -7.0f));
    const cuda::IndexerCacheView view{da.get(), dp.get(), c.dim, page_bytes};
    cuda::indexer_scores(dq.get(), dw.get(), c.n_heads, view, c.n_keys, ds.get(), nullptr);
    const auto got = ds.to_host();
    // fp32 dots in another order than the reference's exact ones: 1e-5 relative plus 1e-5 of the rms.
    test::check_close(got, want, 1e-5, 1e-5, 1e-9, "indexer_scores");
    for (int64_t s = c.n_keys; s < ld; ++s) CHECK(got[size_t(s)] == -7.0f);
  }
}

namespace {

// Compares each row of got ([n_rows, ld_out]) with the CPU reference.
void check_rows(const std::vector<float>& scores, int64_t n_rows, int64_t ld, const std::vector<int32_t>& n_valid,
                int64_t k, const std::vector<int32_t>& got, int64_t ld_out) {
  for (int64_t r = 0; r < n_rows; ++r) {
    CAPTURE(r);
    const int64_t nr = n_valid[size_t(r)], kr = std::min(k, nr);
    std::vector<int32_t> want(static_cast<size_t>(kr));
    cpu::topk_positions(scores.data() + r * ld, nr, kr, want.data());
    std::vector<int32_t> row(got.begin() + r * ld_out, got.begin() + r * ld_out + kr);
    CHECK(std::is_sorted(row.begin(), row.end()));  // ascending output, as the CPU
    std::vector<int32_t> a = row, b = want;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    size_t diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff += a[i] != b[i];
    INFO(diff, " of ", kr, " selected positions differ from the reference");
    CHECK(diff == 0);
    for (int64_t i = kr; i < k; ++i) CHECK(got[size_t(r * ld_out + i)] == -1);
    for (int64_t i = k; i < ld_out; ++i) CHECK(got[size_t(r * ld_out + i)] == -9);  // past k: untouched
  }
}

using TopkLauncher = void (*)(const float*, int64_t, int64_t, int64_t, const int32_t*, int64_t, int32_t*, int64_t,
                              cudaStream_t);

// The three entry points: the dispatcher, one block per row, each row over several blocks.
struct NamedLauncher {
  const char* name;
  TopkLauncher launch;
};
const NamedLauncher kLaunchers[] = {{"topk_positions", cuda::topk_positions},
                                    {"topk_positions_rows", cuda::topk_positions_rows},
                                    {"topk_positions_split", cuda::topk_positions_split}};

// Runs each GPU top-k on rows and compares every row's selection, as a set, with the CPU reference;
// both break ties towards the lower position, so the sets are equal, not just equal in value.
// Without n_valid every row has ld candidates.
void check_topk(const std::vector<float>& scores, int64_t n_rows, int64_t ld, std::vector<int32_t> n_valid, int64_t k) {
  const bool all_valid = n_valid.empty();
  if (all_valid) n_valid.assign(size_t(n_rows), int32_t(ld));
  const int64_t ld_out = k + 3;
  DeviceBuffer<float> ds(scores);
  DeviceBuffer<int32_t> dn(n_valid);
  for (const NamedLauncher& launcher : kLaunchers) {
    CAPTURE(launcher.name);
    DeviceBuffer<int32_t> dout(std::vector<int32_t>(static_cast<size_t>(n_rows * ld_out), -9));
    launcher.launch(ds.get(), ld, n_rows, ld, all_valid ? nullptr : dn.get(), k, dout.get(), ld_out, nullptr);
    check_rows(scores, n_rows, ld, n_valid, k, dout.to_host(), ld_out);
  }
}

}  // namespace

TEST_CASE("gpu top-k selects the same positions as the CPU reference") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(32);
  const int64_t n = 131072 + 37, n_rows = 4, k = 2048;
  SUBCASE("distinct scores, full and partial rows") {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> s(static_cast<size_t>(n * n_rows));
    for (auto& v : s) v = d(rng);
    check_topk(s, n_rows, n, {int32_t(n), int32_t(n - 1000), 5000, 2049}, k);
  }
  SUBCASE("heavy ties, signed zeros, infinities and NaN") {
    std::uniform_int_distribution<int> d(-3, 3);
    std::vector<float> s(static_cast<size_t>(n * n_rows));
    for (auto& v : s) v = float(d(rng));  // ~18K copies of each value: ties straddle the k-th place
    for (int64_t i = 0; i < n * n_rows; i += 97) s[size_t(i)] = std::numeric_limits<float>::quiet_NaN();
    for (int64_t i = 5; i < n * n_rows; i += 1013) s[size_t(i)] = -0.0f;
    for (int64_t i = 7; i < n * n_rows; i += 4099) s[size_t(i)] = std::numeric_limits<float>::infinity();
    for (int64_t i = 9; i < n * n_rows; i += 577) s[size_t(i)] = -std::numeric_limits<float>::infinity();
    check_topk(s, n_rows, n, {int32_t(n), int32_t(n - 1), 100000, 40000}, k);
  }
  SUBCASE("rows shorter than k are taken whole and padded with -1") {
    std::vector<float> s(static_cast<size_t>(4 * 3000));
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (auto& v : s) v = d(rng);
    for (size_t i = 0; i < 3000; ++i) s[i] = -std::numeric_limits<float>::infinity();  // the causal mask
    check_topk(s, 4, 3000, {3000, 1, 2048, 2047}, k);
  }
  SUBCASE("small k") {
    std::uniform_int_distribution<int> d(0, 1);
    std::vector<float> s(static_cast<size_t>(2 * 777));
    for (auto& v : s) v = float(d(rng));
    check_topk(s, 2, 777, {777, 300}, 1);
    check_topk(s, 2, 777, {777, 300}, 33);
    check_topk(s, 2, 777, {0, 300}, 33);  // an empty row: all -1
  }
  SUBCASE("one long row without n_valid (a decode step)") {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> s(static_cast<size_t>(n));
    for (auto& v : s) v = d(rng);
    check_topk(s, 1, n, {}, k);
  }
  SUBCASE("distinct scores within one bin of the top 12 bits") {
    // [1, 1.1): the split form's first digit puts every score in one bin, so its radix select
    // finishes on the low 20 bits: from the whole row (more entries than its candidate list
    // holds) and from the gathered candidates (the short rows).
    std::uniform_real_distribution<float> d(1.0f, 1.1f);
    std::vector<float> s(static_cast<size_t>(n * n_rows));
    for (auto& v : s) v = d(rng);
    check_topk(s, n_rows, n, {int32_t(n), 16384, 10000, 2049}, k);
  }
}
