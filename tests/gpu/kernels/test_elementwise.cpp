// GPU rms_norm, act_quant, RoPE and Hadamard against the CPU reference (kernels/cpu).
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/hadamard.hpp"
#include "kernels/cpu/norm.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/rope.hpp"
#include "kernels/cuda/hadamard.hpp"
#include "kernels/cuda/norm.hpp"
#include "kernels/cuda/quant.hpp"
#include "kernels/cuda/rope.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;
using dsa::test::DeviceBuffer;

namespace {

// Every element equal to the reference or one bf16 ulp away (the fp64 sum of squares reduces in a
// different order, which moves a value only when it sits on a bf16 rounding boundary), and at most
// 0.1% of them off.
void check_bf16_ulp(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  size_t off = 0, far = 0, first_far = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] == want[i]) continue;
    ++off;
    if (!test::within_bf16_ulp(got[i], want[i]) && far++ == 0) first_far = i;
  }
  INFO(what, ": ", off, " of ", got.size(), " differ, ", far, " by more than one bf16 ulp (first at ", first_far,
       ": got ", got[first_far], " want ", want[first_far], ")");
  CHECK(far == 0);
  CHECK(off * 1000 <= got.size());
}

}  // namespace

TEST_CASE("gpu rms_norm and add_rms_norm match the CPU reference") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(11);
  for (int64_t n : {7168, 1000, 33}) {
    CAPTURE(n);
    const int64_t rows = 5;
    const auto x = test::random_bf16(static_cast<size_t>(rows * n), rng, 3.0f);
    const auto res = test::random_bf16(static_cast<size_t>(rows * n), rng, 2.0f);
    const auto w = test::random_bf16(static_cast<size_t>(n), rng, 0.5f);

    std::vector<float> want(x.size());
    cpu::rms_norm(x.data(), rows, n, w.data(), 1e-6f, want.data());
    DeviceBuffer<float> dx(x), dw(w), dy(x.size());
    cuda::rms_norm(dx.get(), rows, n, dw.get(), 1e-6f, dy.get(), nullptr);
    check_bf16_ulp(dy.to_host(), want, "rms_norm");
    cuda::rms_norm(dx.get(), rows, n, dw.get(), 1e-6f, dx.get(), nullptr);  // in place
    check_bf16_ulp(dx.to_host(), want, "rms_norm in place");

    std::vector<float> res_want = res, y_want(x.size());
    cpu::add_rms_norm(x.data(), res_want.data(), rows, n, w.data(), 1e-6f, y_want.data());
    DeviceBuffer<float> dx2(x), dres(res);
    cuda::add_rms_norm(dx2.get(), dres.get(), rows, n, dw.get(), 1e-6f, dx2.get(), nullptr);
    test::check_exact(dres.to_host(), res_want, "add_rms_norm residual");
    check_bf16_ulp(dx2.to_host(), y_want, "add_rms_norm output");
  }
}

TEST_CASE("gpu layer_norm matches the CPU reference") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(15);
  for (int64_t n : {128, 1000}) {
    CAPTURE(n);
    const int64_t rows = 6;
    auto x = test::random_bf16(static_cast<size_t>(rows * n), rng, 2.0f);
    for (auto& v : x) v = round_bf16(v + 3.0f);  // a mean far from zero
    const auto w = test::random_bf16(static_cast<size_t>(n), rng, 0.5f);
    const auto b = test::random_bf16(static_cast<size_t>(n), rng, 0.1f);
    std::vector<float> want(x.size());
    cpu::layer_norm(x.data(), rows, n, w.data(), b.data(), 1e-6f, want.data());
    DeviceBuffer<float> dx(x), dw(w), db(b);
    cuda::layer_norm(dx.get(), rows, n, dw.get(), db.get(), 1e-6f, dx.get(), nullptr);  // in place
    check_bf16_ulp(dx.to_host(), want, "layer_norm");
  }
}

TEST_CASE("gpu act_quant is bit-exact with the CPU reference") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(12);
  for (int64_t block : {128, 64, 96}) {
    CAPTURE(block);
    const int64_t n_blocks = 41;
    std::vector<float> x = test::random_bf16(static_cast<size_t>(block * n_blocks), rng);
    // Blocks across magnitudes (tiny ones hit the 1e-4 floor and subnormal codes), and an all-zero one.
    for (int64_t b = 0; b < n_blocks; ++b)
      for (int64_t i = 0; i < block; ++i) x[b * block + i] = round_bf16(x[b * block + i] * std::ldexp(1.0f, int(b) - 20));
    for (int64_t i = 0; i < block; ++i) x[3 * block + i] = 0.0f;
    std::vector<uint8_t> codes_want(x.size());
    std::vector<float> scales_want(static_cast<size_t>(n_blocks));
    cpu::act_quant(x.data(), int64_t(x.size()), block, codes_want.data(), scales_want.data());
    DeviceBuffer<float> dx(x), ds(static_cast<size_t>(n_blocks));
    DeviceBuffer<uint8_t> dc(x.size());
    cuda::act_quant(dx.get(), int64_t(x.size()), block, dc.get(), ds.get(), nullptr);
    test::check_exact(dc.to_host(), codes_want, "codes");
    test::check_exact(ds.to_host(), scales_want, "scales");
  }
}

TEST_CASE("gpu act_quant_rows: act_quant's codes and scales per row, the scales token-major, padding rows zero") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(14);
  const int64_t m = 5, m_pad = 16, k = 384, ldx = k + 12, kb = k / 128;
  std::vector<float> x = test::random_bf16(static_cast<size_t>(m * ldx), rng);
  for (int64_t i = 0; i < m; ++i)  // rows across magnitudes
    for (int64_t c = 0; c < k; ++c) x[i * ldx + c] = round_bf16(x[i * ldx + c] * std::ldexp(1.0f, int(4 * i) - 8));
  DeviceBuffer<float> dx(x);
  DeviceBuffer<uint8_t> dc(std::vector<uint8_t>(static_cast<size_t>(m_pad * k), 0x55));
  DeviceBuffer<float> ds(std::vector<float>(static_cast<size_t>(kb * m_pad), -1.0f));
  cuda::act_quant_rows(dx.get(), ldx, m, m_pad, k, dc.get(), ds.get(), nullptr);
  const auto codes = dc.to_host();
  const auto scales = ds.to_host();
  for (int64_t i = 0; i < m_pad; ++i) {
    CAPTURE(i);
    std::vector<uint8_t> want(static_cast<size_t>(k), 0);
    std::vector<float> want_s(static_cast<size_t>(kb), 1.0f);
    if (i < m) cpu::act_quant(x.data() + i * ldx, k, 128, want.data(), want_s.data());
    test::check_exact(std::vector<uint8_t>(codes.begin() + i * k, codes.begin() + (i + 1) * k), want, "codes");
    std::vector<float> got_s;
    for (int64_t b = 0; b < kb; ++b) got_s.push_back(scales[size_t(b * m_pad + i)]);
    test::check_exact(got_s, want_s, "scales");
  }
}

TEST_CASE("gpu RoPE matches the CPU reference in both layouts") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(13);
  const int64_t dim = 64, n_tok = 7, n_heads = 5, head_stride = 192 + 8, tok_stride = n_heads * head_stride + 3;
  const auto inv_freq = cpu::yarn_inv_freq(dim, 10000.0, 40.0, 4096, 32.0, 1.0);
  const std::vector<int64_t> pos = {0, 1, 17, 4095, 4096, 65537, 131071};
  for (auto layout : {cpu::RopeLayout::interleaved, cpu::RopeLayout::rotate_half}) {
    CAPTURE(int(layout));
    const auto x = test::random_bf16(static_cast<size_t>(n_tok * tok_stride), rng);
    std::vector<float> want = x;
    // The rope part sits at offset 128 of each 200-wide head, as q_pe after q_nope.
    cpu::apply_rope(want.data() + 128, n_tok, n_heads, tok_stride, head_stride, dim, pos.data(), inv_freq.data(),
                    layout);
    DeviceBuffer<float> dx(x), df(inv_freq);
    DeviceBuffer<int64_t> dp(pos);
    cuda::apply_rope(dx.get() + 128, n_tok, n_heads, tok_stride, head_stride, dim, dp.get(), df.get(), layout,
                     nullptr);
    const auto got = dx.to_host();
    // Elements outside the rope parts are untouched; rotated ones within one bf16 ulp (cos/sin may
    // round differently from the C library's fp32 versions).
    size_t far = 0, off = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] == want[i]) continue;
      ++off;
      if (!test::within_bf16_ulp(got[i], want[i])) ++far;
    }
    INFO(off, " of ", got.size(), " differ, ", far, " by more than one bf16 ulp");
    CHECK(far == 0);
    CHECK(off * 100 <= got.size());
  }
}

TEST_CASE("gpu Hadamard is bit-exact with the CPU reference") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(14);
  for (int64_t n : {1, 2, 16, 64, 128}) {
    CAPTURE(n);
    const int64_t rows = 9;
    const auto x = test::random_bf16(static_cast<size_t>(rows * n), rng);
    const double scale = 1.0 / std::sqrt(double(n));
    std::vector<float> want(x.size());
    cpu::hadamard(x.data(), rows, n, scale, want.data());
    DeviceBuffer<float> dx(x), dy(x.size());
    cuda::hadamard(dx.get(), rows, n, scale, dy.get(), nullptr);
    test::check_exact(dy.to_host(), want, "hadamard");
    cuda::hadamard(dx.get(), rows, n, scale, dx.get(), nullptr);
    test::check_exact(dx.to_host(), want, "hadamard in place");
  }
}
