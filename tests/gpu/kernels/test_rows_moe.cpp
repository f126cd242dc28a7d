// GPU row moves, MoE router / SwiGLU / combination and the indexer's weight fold, bit for bit
// against the CPU reference (kernels/cpu).
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/indexer.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/rows.hpp"
#include "kernels/cuda/indexer.hpp"
#include "kernels/cuda/moe.hpp"
#include "kernels/cuda/rows.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;
using dsa::test::DeviceBuffer;

TEST_CASE("gpu embed_rows and gather_rows are bit-exact with the CPU") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(40);
  const int64_t vocab = 300, dim = 7168 + 3;
  std::vector<uint16_t> table(static_cast<size_t>(vocab * dim));
  for (auto& b : table) b = uint16_t(rng());  // every bf16 pattern, NaNs and infinities included
  const std::vector<int32_t> ids = {0, 299, 17, 17, -1, 150, 1, 298};  // -1: a row of zeros
  const int64_t n = int64_t(ids.size());
  std::vector<float> want(static_cast<size_t>(n * dim));
  cpu::embed_rows(table.data(), dim, ids.data(), n, want.data());
  DeviceBuffer<uint16_t> dt(table);
  DeviceBuffer<int32_t> di(ids);
  DeviceBuffer<float> dout(want.size());
  cuda::embed_rows(dt.get(), dim, di.get(), n, dout.get(), nullptr);
  test::check_exact(dout.to_host(), want, "embed_rows");

  const int64_t n_src = 50, gdim = 129;
  const auto src = test::random_bf16(static_cast<size_t>(n_src * gdim), rng);
  const std::vector<int32_t> rows = {49, 0, 3, 3, 48, 25};
  std::vector<float> gwant(rows.size() * size_t(gdim));
  cpu::gather_rows(src.data(), gdim, rows.data(), int64_t(rows.size()), gwant.data());
  DeviceBuffer<float> ds(src), dg(gwant.size());
  DeviceBuffer<int32_t> dr(rows);
  cuda::gather_rows(ds.get(), gdim, dr.get(), int64_t(rows.size()), dg.get(), nullptr);
  test::check_exact(dg.to_host(), gwant, "gather_rows");
}

TEST_CASE("gpu round_bf16 is bit-exact with the CPU, halfway cases and NaN included") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(41);
  std::vector<float> x(100000);
  for (auto& v : x) v = bits_to_float(uint32_t(rng()));  // any bits: subnormals, NaNs, infinities
  for (size_t i = 0; i < x.size(); i += 7) x[i] = bits_to_float((uint32_t(rng()) & 0xffff0000u) | 0x8000u);  // ties
  for (size_t i = 3; i < x.size(); i += 11) x[i] = bits_to_float(0x7f7f8000u | (uint32_t(rng()) & 0x80000000u));
  std::vector<float> want = x;
  cpu::round_bf16(want.data(), int64_t(want.size()));
  DeviceBuffer<float> dx(x);
  cuda::round_bf16(dx.get(), int64_t(x.size()), nullptr);
  test::check_exact(dx.to_host(), want, "round_bf16");
}

namespace {

struct RouteCase {
  int64_t n_experts, n_group, topk_group, topk;
  bool norm;
  float scaling;
};

// Routes n_tok rows of logits on both sides and compares expert ids and weights bit for bit.
void check_route(const RouteCase& c, const std::vector<float>& logits, const std::vector<float>& bias) {
  const int64_t n_tok = int64_t(logits.size()) / c.n_experts;
  std::vector<int32_t> idx_want(static_cast<size_t>(n_tok * c.topk));
  std::vector<float> w_want(idx_want.size());
  for (int64_t t = 0; t < n_tok; ++t)
    cpu::moe_route(logits.data() + t * c.n_experts, bias.data(), c.n_experts, c.n_group, c.topk_group, c.topk,
                   c.norm, c.scaling, idx_want.data() + t * c.topk, w_want.data() + t * c.topk);
  DeviceBuffer<float> dl(logits), db(bias), dw(w_want.size());
  DeviceBuffer<int32_t> di(idx_want.size());
  cuda::moe_route(dl.get(), db.get(), n_tok, c.n_experts, c.n_group, c.topk_group, c.topk, c.norm, c.scaling,
                  di.get(), dw.get(), nullptr);
  test::check_exact(di.to_host(), idx_want, "expert ids");
  test::check_exact(dw.to_host(), w_want, "routing weights");
}

}  // namespace

TEST_CASE("gpu moe_route chooses the same experts and weights as the CPU") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  SUBCASE("V3.2 shape: 256 experts, 8 groups, 4 kept, top-8") {
    const RouteCase c{256, 8, 4, 8, true, 2.5f};
    const int64_t n_tok = 67;
    std::vector<float> logits(static_cast<size_t>(n_tok * c.n_experts)), bias(static_cast<size_t>(c.n_experts));
    for (auto& v : logits) v = round_bf16(2.0f * normal(rng));
    for (auto& v : bias) v = 0.05f * normal(rng);
    // Rows of tied scores: a few distinct logits with zero bias, then a row all equal (every group
    // ties, so groups 0-3 and experts 0-7 win).
    std::vector<float> tied_bias(bias.size(), 0.0f);
    std::vector<float> tied(static_cast<size_t>(9 * c.n_experts));
    std::uniform_int_distribution<int> few(-2, 2);
    for (auto& v : tied) v = 0.5f * float(few(rng));
    for (int64_t e = 0; e < c.n_experts; ++e) tied[size_t(8 * c.n_experts + e)] = 0.25f;
    check_route(c, logits, bias);
    check_route(c, tied, tied_bias);
    check_route({256, 8, 4, 8, false, 1.0f}, logits, bias);
  }
  SUBCASE("small configs with ties: groups of one, one group, top-k past NumPy's eight accumulators") {
    std::uniform_int_distribution<int> few(0, 3);
    const RouteCase cases[] = {
        {16, 4, 2, 4, true, 1.0f},    // groups of 4
        {8, 8, 3, 3, true, 1.5f},     // groups of one expert: the group score is its sb
        {64, 1, 1, 12, true, 2.0f},   // one group; 12 weights: pairwise sum with a tail of 4
        {96, 4, 4, 17, true, 1.0f},   // every group kept; 17 = 2 * 8 + 1
        {32, 2, 1, 16, false, 0.5f},  // exactly the experts of one group
    };
    for (const RouteCase& c : cases) {
      CAPTURE(c.n_experts);
      CAPTURE(c.topk);
      const int64_t n_tok = 41;
      std::vector<float> logits(static_cast<size_t>(n_tok * c.n_experts)), bias(static_cast<size_t>(c.n_experts));
      for (auto& v : logits) v = float(few(rng)) - 1.0f;
      for (auto& v : bias) v = 0.125f * float(few(rng));  // exact sums: ties survive the bias
      check_route(c, logits, bias);
    }
  }
}

TEST_CASE("gpu swiglu is bit-exact with the CPU, in place too") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(43);
  const size_t n = 18432 * 3 + 5;
  auto gate = test::random_bf16(n, rng, 4.0f);
  const auto up = test::random_bf16(n, rng, 2.0f);
  gate[0] = 0.0f;
  gate[1] = -1000.0f;  // exp(-g) overflows: silu is -0
  gate[2] = 1000.0f;   // exp(-g) underflows: silu is g
  std::vector<float> want(n);
  cpu::swiglu(gate.data(), up.data(), int64_t(n), want.data());
  DeviceBuffer<float> dg(gate), du(up), dout(n);
  cuda::swiglu(dg.get(), du.get(), int64_t(n), dout.get(), nullptr);
  test::check_exact(dout.to_host(), want, "swiglu");
  cuda::swiglu(dg.get(), du.get(), int64_t(n), dg.get(), nullptr);
  test::check_exact(dg.to_host(), want, "swiglu in place");
}

TEST_CASE("gpu moe_combine is bit-exact with the CPU, with and without the shared expert") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(44);
  const int64_t n_tok = 9, topk = 8, dim = 1031, n_y = 40;
  const auto y = test::random_bf16(static_cast<size_t>(n_y * dim), rng, 3.0f);
  const auto shared = test::random_bf16(static_cast<size_t>(n_tok * dim), rng);
  std::vector<int32_t> row(static_cast<size_t>(n_tok * topk));
  std::uniform_int_distribution<int32_t> pick(-1, int32_t(n_y - 1));  // -1: a slot of another rank
  for (auto& r : row) r = pick(rng);
  for (int64_t k = 0; k < topk; ++k) row[size_t(2 * topk + k)] = -1;  // a token with no local slot
  std::vector<float> weight(row.size());
  std::uniform_real_distribution<float> u(0.0f, 0.5f);
  for (auto& w : weight) w = u(rng);
  DeviceBuffer<float> dy(y), dw(weight), dout(shared.size());
  DeviceBuffer<int32_t> dr(row);
  for (bool with_shared : {true, false}) {
    CAPTURE(with_shared);
    std::vector<float> want(shared.size());
    cpu::moe_combine(y.data(), row.data(), weight.data(), n_tok, topk, dim, with_shared ? shared.data() : nullptr,
                     want.data());
    DeviceBuffer<float> ds(shared);
    cuda::moe_combine(dy.get(), dr.get(), dw.get(), n_tok, topk, dim, with_shared ? ds.get() : nullptr, dout.get(),
                      nullptr);
    test::check_exact(dout.to_host(), want, "moe_combine");
    if (with_shared) {  // out aliasing shared
      cuda::moe_combine(dy.get(), dr.get(), dw.get(), n_tok, topk, dim, ds.get(), ds.get(), nullptr);
      test::check_exact(ds.to_host(), want, "moe_combine into shared");
    }
  }
}

TEST_CASE("gpu indexer_fold_weights is bit-exact with the CPU") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(45);
  const int64_t n = 64 * 37;  // n_tok rows of 64 heads
  auto w = test::random_bf16(static_cast<size_t>(n), rng);
  std::vector<float> q_scale(static_cast<size_t>(n));
  std::uniform_real_distribution<float> u(1e-3f, 1.0f);
  for (auto& s : q_scale) s = u(rng);  // not powers of two, so every product rounds
  const float head_scale = 1.0f / std::sqrt(64.0f), rot_scale = 1.0f / std::sqrt(128.0f);
  std::vector<float> want = w;
  cpu::indexer_fold_weights(want.data(), q_scale.data(), n, head_scale, rot_scale);
  DeviceBuffer<float> dw(w), dq(q_scale);
  cuda::indexer_fold_weights(dw.get(), dq.get(), n, head_scale, rot_scale, nullptr);
  test::check_exact(dw.to_host(), want, "folded weights");
}
