// GPU linears (decode GEMV, and for more rows the tensor-core GEMM on sm_80+ or the tiled GEMM before
// it; bf16 and FP8 block-scaled) against the CPU scalar
// reference. Tolerance: fp32 accumulation in another order than the reference's fp64, then the
// bf16 output rounding: each element within 2^-7 relative (one bf16 ulp either side) plus 1e-4 of
// the output's rms, normalised squared error <= 1e-5. FP8 products on tensor cores (sm_89+: the
// 9-16-row GEMV, the grouped GEMM, cuBLASLt) get 2e-3 of the rms instead: the tensor cores add a
// 32-wide FP8 product into an accumulator of about 14 bits, not fp32's 24 (DeepSeek-V3's report,
// section 3.3.2); each 128-block's sum is promoted to fp32 as the reference does, so the error is
// about 2^-14 of the rms, and outputs near zero can pass 1e-4 of it.
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/moe.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;
using dsa::test::DeviceBuffer;

namespace {

constexpr double kAbsFrac = 1e-4;
constexpr double kFp8TensorCoreAbsFrac = 2e-3;

struct Shape {
  int64_t m, n, k, ldw_pad;  // ldw = k + ldw_pad (a pad that breaks 16-byte rows takes the GEMM)
};

using Fp8Launcher = void (*)(const float*, int64_t, int64_t, int64_t, const uint8_t*, int64_t, const float*, int64_t,
                             int64_t, float*, int64_t, cudaStream_t);

// scale_pad: extra entries per row of the weight's scales (0: the whole-k layout cuBLASLt takes).
// w_offset: bytes before the weights in their buffer (16: weights only 16-byte aligned).
void run_fp8(const Shape& s, std::mt19937& rng, int64_t scale_pad = 1, Fp8Launcher launch = cuda::matmul_fp8,
             int64_t w_offset = 0) {
  CAPTURE(s.m);
  CAPTURE(s.n);
  CAPTURE(s.k);
  CAPTURE(s.ldw_pad);
  CAPTURE(scale_pad);
  const int64_t ldw = s.k + s.ldw_pad, ld_scale = (s.k + 127) / 128 + scale_pad;
  const auto x = test::random_bf16(static_cast<size_t>(s.m * s.k), rng, 2.0f);
  // Weights: random e4m3 codes except NaN (0x7f / 0xff), positive power-of-two-ish block scales.
  std::uniform_int_distribution<int> code(0, 253);
  std::vector<uint8_t> w(static_cast<size_t>(s.n * ldw));
  for (auto& c : w) {
    const int v = code(rng);
    c = uint8_t(v >= 127 ? v + 1 : v);
  }
  std::uniform_real_distribution<float> sd(1e-4f, 3e-3f);
  std::vector<float> si(static_cast<size_t>((s.n + 127) / 128 * ld_scale));
  for (auto& v : si) v = sd(rng);
  std::vector<float> want(static_cast<size_t>(s.m * s.n));
  cpu::matmul_fp8_scalar(x.data(), s.k, s.m, s.k, w.data(), ldw, si.data(), ld_scale, s.n, want.data(), s.n);
  DeviceBuffer<float> dx(x), dsi(si), dy(want.size());
  std::vector<uint8_t> w_at(static_cast<size_t>(w_offset), 0);
  w_at.insert(w_at.end(), w.begin(), w.end());
  DeviceBuffer<uint8_t> dw(w_at);
  launch(dx.get(), s.k, s.m, s.k, dw.get() + w_offset, ldw, dsi.get(), ld_scale, s.n, dy.get(), s.n, nullptr);
  // matmul_fp8 itself takes more than 8 rows to the tensor cores where it can; the other launchers
  // always do.
  const bool tensor_cores = launch != cuda::matmul_fp8 || s.m > 8;
  test::check_close(dy.to_host(), want, 1.0 / 128, tensor_cores ? kFp8TensorCoreAbsFrac : kAbsFrac, 1e-5, "matmul_fp8");
}

// The current device's compute capability as major * 10 + minor.
int compute_capability() {
  int device = 0, major = 0, minor = 0;
  DSA_CUDA_OK(cudaGetDevice(&device));
  DSA_CUDA_OK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  DSA_CUDA_OK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

// cuda::matmul_fp8_cublaslt, which must take the product on Hopper (and nothing elsewhere).
void fp8_through_cublaslt(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                          const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                          cudaStream_t stream) {
  const bool ran = cuda::matmul_fp8_cublaslt(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream);
  REQUIRE(ran == (compute_capability() == 90));
  if (!ran) cuda::matmul_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream);
}

using Bf16Launcher = void (*)(const float*, int64_t, int64_t, int64_t, const uint16_t*, int64_t, int64_t, float*,
                              int64_t, bool, cudaStream_t);

void run_bf16(const Shape& s, bool round_out, std::mt19937& rng, Bf16Launcher launch = cuda::matmul_bf16) {
  CAPTURE(s.m);
  CAPTURE(s.n);
  CAPTURE(s.k);
  CAPTURE(round_out);
  const int64_t ldw = s.k + s.ldw_pad;
  const auto x = test::random_bf16(static_cast<size_t>(s.m * s.k), rng);
  const auto w = test::to_bf16_bits(test::random_bf16(static_cast<size_t>(s.n * ldw), rng, 0.05f));
  std::vector<float> want(static_cast<size_t>(s.m * s.n));
  cpu::matmul_bf16_scalar(x.data(), s.k, s.m, s.k, w.data(), ldw, s.n, want.data(), s.n, round_out);
  DeviceBuffer<float> dx(x), dy(want.size());
  DeviceBuffer<uint16_t> dw(w);
  launch(dx.get(), s.k, s.m, s.k, dw.get(), ldw, s.n, dy.get(), s.n, round_out, nullptr);
  test::check_close(dy.to_host(), want, round_out ? 1.0 / 128 : 1e-5, 1e-4, 1e-5, "matmul_bf16");
}

}  // namespace

TEST_CASE("gpu matmul_fp8 matches the CPU reference (GEMV and GEMM)") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(21);
  // n = 300: a partial last scale row and a partial GEMV block; k = 640: a partial warp step.
  // m = 2..16 take the GEMV (8 x 7168: shared memory past 48 KiB), 70 and more the GEMM (partial
  // row and column tiles; 256 x 512 x 2048: a prefill-like shape of many tiles and 16 K steps).
  for (const Shape& s : {Shape{1, 300, 1024, 0}, Shape{1, 130, 640, 0}, Shape{1, 77, 384, 8}, Shape{1, 1536, 7168, 0},
                         Shape{5, 300, 640, 0}, Shape{2, 257, 2048, 0}, Shape{8, 520, 7168, 0}, Shape{9, 129, 384, 0},
                         Shape{70, 129, 256, 0}, Shape{130, 200, 1024, 0}, Shape{256, 512, 2048, 0},
                         // Narrow ones, k split over blocks (parts of 5 and 10 128-blocks), 3 and 8 rows.
                         Shape{3, 1536, 1152, 0}, Shape{8, 1536, 7168, 0}})
    run_fp8(s, rng);
}

// cuda::matmul_fp8_gemv_mma, which must take the product where the device has FP8 tensor cores.
void fp8_gemv_on_tensor_cores(const float* x, int64_t ldx, int64_t m, int64_t k, const uint8_t* w, int64_t ldw,
                              const float* scale_inv, int64_t ld_scale, int64_t n, float* y, int64_t ldy,
                              cudaStream_t stream) {
  const bool ran = cuda::matmul_fp8_gemv_mma(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream);
  // Never below sm_89, always on Hopper (built for sm_90a); elsewhere as the build's targets allow.
  if (compute_capability() < 89) REQUIRE(!ran);
  if (compute_capability() == 90) REQUIRE(ran);
  if (!ran) cuda::matmul_fp8(x, ldx, m, k, w, ldw, scale_inv, ld_scale, n, y, ldy, stream);
}

TEST_CASE("gpu matmul_fp8 for up to 16 rows on FP8 tensor cores matches the CPU reference") {
  // Every row count 1..16 (the padding rows of the 16-row product), n not a multiple of 8 (a
  // partial warp tile) nor of 128 (a partial scale row), V3.2's k = 7168, scales with a padded
  // stride.
  DSA_REQUIRE_GPU();
  std::mt19937 rng(23);
  for (int64_t m = 1; m <= 16; ++m) run_fp8(Shape{m, 300, 1024, 0}, rng, 1, fp8_gemv_on_tensor_cores);
  run_fp8(Shape{16, 1536, 7168, 0}, rng, 0, fp8_gemv_on_tensor_cores);
  run_fp8(Shape{11, 261, 384, 16}, rng, 2, fp8_gemv_on_tensor_cores);
}

TEST_CASE("gpu matmul_bf16 for up to 16 rows on the tensor cores matches the CPU reference") {
  // Every row count 1..16, rounded and fp32 outputs, n not a multiple of 8, strided weights and
  // outputs; it must take the product on sm_80+.
  DSA_REQUIRE_GPU();
  std::mt19937 rng(25);
  for (int64_t m = 1; m <= 16; ++m) {
    for (const bool round_out : {true, false}) {
      CAPTURE(m);
      CAPTURE(round_out);
      const int64_t n = 261, k = 384, ldw = k + 8, ldx = k + 4, ldy = n + 3;
      const auto x = test::random_bf16(static_cast<size_t>(m * ldx), rng);
      const auto w = test::to_bf16_bits(test::random_bf16(static_cast<size_t>(n * ldw), rng, 0.05f));
      std::vector<float> want(static_cast<size_t>(m * ldy), -3.0f);
      cpu::matmul_bf16_scalar(x.data(), ldx, m, k, w.data(), ldw, n, want.data(), ldy, round_out);
      DeviceBuffer<float> dx(x), dy(std::vector<float>(want.size(), -3.0f));
      DeviceBuffer<uint16_t> dw(w);
      const bool ran = cuda::matmul_bf16_gemv_mma(dx.get(), ldx, 0, m, k, dw.get(), ldw, 0, n, dy.get(), ldy, 0, 1,
                                                  round_out, nullptr);
      REQUIRE(ran == (compute_capability() >= 80));
      if (ran) test::check_close(dy.to_host(), want, round_out ? 1.0 / 128 : 1e-5, 1e-4, 1e-5, "matmul_bf16_gemv_mma");
    }
  }
}

TEST_CASE("gpu matmul_fp8 through cuBLASLt's block-scaled FP8 GEMM (Hopper) matches the CPU reference") {
  // The scales in the checkpoint's whole-k layout (k / 128 a multiple of 4): cuBLASLt's
  // BLK128x128 mode for the weights, VEC128 for the rows. Rows not a multiple of 4 or 64 (padded
  // inside), a partial last scale row (n = 136), V3.2's k = 7168 and 1536. Then through
  // matmul_fp8, which picks it for more than 16 rows.
  DSA_REQUIRE_GPU();
  std::mt19937 rng(22);
  for (const Shape& s : {Shape{17, 256, 512, 0}, Shape{100, 512, 7168, 0}, Shape{257, 136, 1536, 0},
                         Shape{64, 1024, 2048, 0}}) {
    run_fp8(s, rng, 0, fp8_through_cublaslt);
    run_fp8(s, rng, 0);
  }
  // Weights only 16-byte aligned (a plan chosen for them, not for 256-byte aligned ones).
  run_fp8(Shape{100, 512, 7168, 0}, rng, 0, fp8_through_cublaslt, 16);
}

TEST_CASE("gpu matmul_bf16 matches the CPU reference (GEMV and GEMM)") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(22);
  // Past 16 rows cuBLASLt takes the product on sm_80+ where k and ldw are multiples of 8; k = 1003
  // and a pad of 4 leave 70 and 40 rows to the own tensor-core GEMM.
  for (bool round_out : {true, false})
    for (const Shape& s :
         {Shape{1, 257, 1000, 0}, Shape{1, 64, 1003, 0}, Shape{1, 33, 512, 4}, Shape{1, 512, 7168, 0},
          Shape{3, 257, 1000, 0}, Shape{8, 130, 7168, 0}, Shape{9, 65, 200, 0}, Shape{67, 65, 96, 0},
          Shape{130, 200, 1000, 0}, Shape{256, 512, 2048, 0}, Shape{70, 65, 1003, 0}, Shape{40, 33, 512, 4}})
      run_bf16(s, round_out, rng);
}

// cuda::matmul_bf16_cublaslt, which must take the product on sm_80+ where the output rows are
// 16-byte aligned (cuBLASLt may have no kernel for less) and nothing before.
void bf16_through_cublaslt(const float* x, int64_t ldx, int64_t m, int64_t k, const uint16_t* w, int64_t ldw, int64_t n,
                           float* y, int64_t ldy, bool round_out, cudaStream_t stream) {
  const bool ran = cuda::matmul_bf16_cublaslt(x, ldx, 0, m, k, w, ldw, 0, n, y, ldy, 0, 1, round_out, stream);
  if (compute_capability() < 80) REQUIRE(!ran);
  if (compute_capability() >= 80 && ldy % 4 == 0) REQUIRE(ran);
  if (!ran) cuda::matmul_bf16(x, ldx, m, k, w, ldw, n, y, ldy, round_out, stream);
}

TEST_CASE("gpu matmul_bf16 through cuBLASLt (sm_80+) matches the CPU reference") {
  // Rows not a multiple of 8 or 64, n odd (outputs only 4-byte aligned rows), a padded weight
  // stride, V3.2's k = 7168 and 1536; also few rows (the decode GEMVs' range, which matmul_bf16
  // keeps for itself).
  DSA_REQUIRE_GPU();
  std::mt19937 rng(25);
  for (bool round_out : {true, false})
    for (const Shape& s :
         {Shape{17, 256, 512, 0}, Shape{100, 576, 7168, 0}, Shape{257, 129, 1536, 8}, Shape{3, 64, 256, 0}})
      run_bf16(s, round_out, rng, bf16_through_cublaslt);
}

TEST_CASE("gpu matmul_bf16_batched: each head's product as the CPU reference's (the absorbed MLA layout)") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(23);
  // q_abs[:, h] = q_nope[:, h] . W_UK[h]: x rows [S, H, nope | rope], w [H, kv_lora, nope], y [S, H, kv_lora];
  // V3.2's 128 heads x (128 nope + 64 rope) -> 512, and a tiny shape; 1 and 3 rows (GEMV), 70 (GEMM).
  struct Case {
    int64_t S, H, nope, rope, out;
  };
  // 12 rows: the tensor-core form on sm_80+ (each head a product of the batch); 70 and 40: cuBLASLt's
  // strided batch on sm_80+.
  for (const Case c : {Case{1, 128, 128, 64, 512}, Case{3, 128, 128, 64, 512}, Case{12, 128, 128, 64, 512},
                       Case{1, 4, 32, 32, 128}, Case{70, 4, 32, 32, 128}, Case{40, 128, 128, 64, 512}}) {
    CAPTURE(c.S);
    CAPTURE(c.H);
    const int64_t dqk = c.nope + c.rope;
    const auto x = test::random_bf16(size_t(c.S * c.H * dqk), rng);
    const auto w = test::to_bf16_bits(test::random_bf16(size_t(c.H * c.out * c.nope), rng, 0.05f));
    std::vector<float> want(size_t(c.S * c.H * c.out));
    for (int64_t h = 0; h < c.H; ++h) {
      cpu::matmul_bf16_scalar(x.data() + h * dqk, c.H * dqk, c.S, c.nope, w.data() + h * c.out * c.nope, c.nope, c.out,
                              want.data() + h * c.out, c.H * c.out, true);
    }
    DeviceBuffer<float> dx(x), dy(want.size());
    DeviceBuffer<uint16_t> dw(w);
    cuda::matmul_bf16_batched(dx.get(), c.H * dqk, dqk, c.S, c.nope, dw.get(), c.nope, c.out * c.nope, c.out, dy.get(),
                              c.H * c.out, c.out, c.H, true, nullptr);
    test::check_close(dy.to_host(), want, 1.0 / 128, 1e-4, 1e-5, "matmul_bf16_batched");
  }
}

TEST_CASE("gpu GEMVs for every row count 1..16, strided rows, and rows the vector path cannot take") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(24);
  for (int64_t m = 1; m <= 17; ++m) {  // 9-16: tensor cores where there are some, else two GEMV launches; 17: GEMM
    run_bf16(Shape{m, 70, 256, 0}, true, rng);
    run_fp8(Shape{m, 70, 256, 0}, rng);
  }
  // Rows ldx apart (ldx != k) and outputs ldy apart (ldy != n), on both GEMVs and on the fallback
  // (ldx % 4 != 0: unaligned rows take the GEMM).
  for (const int64_t ldx : {260, 258}) {
    CAPTURE(ldx);
    const int64_t m = 5, n = 40, k = 256, ldy = 45;
    const auto x = test::random_bf16(static_cast<size_t>(m * ldx), rng);
    const auto wb = test::to_bf16_bits(test::random_bf16(static_cast<size_t>(n * k), rng, 0.05f));
    std::vector<float> want(static_cast<size_t>(m * ldy), 0.0f);
    cpu::matmul_bf16_scalar(x.data(), ldx, m, k, wb.data(), k, n, want.data(), ldy, true);
    DeviceBuffer<float> dx(x), dy(std::vector<float>(want.size(), 0.0f));
    DeviceBuffer<uint16_t> dw(wb);
    cuda::matmul_bf16(dx.get(), ldx, m, k, dw.get(), k, n, dy.get(), ldy, true, nullptr);
    test::check_close(dy.to_host(), want, 1.0 / 128, 1e-4, 1e-5, "matmul_bf16 strided");

    std::vector<uint8_t> w8(static_cast<size_t>(n * k));
    for (auto& c : w8) c = uint8_t(rng() % 126);
    const std::vector<float> si(static_cast<size_t>(2), 1e-3f);
    std::fill(want.begin(), want.end(), 0.0f);
    cpu::matmul_fp8_scalar(x.data(), ldx, m, k, w8.data(), k, si.data(), 2, n, want.data(), ldy);
    DeviceBuffer<uint8_t> dw8(w8);
    DeviceBuffer<float> dsi(si), dy8(std::vector<float>(want.size(), 0.0f));
    cuda::matmul_fp8(dx.get(), ldx, m, k, dw8.get(), k, dsi.get(), 2, n, dy8.get(), ldy, nullptr);
    test::check_close(dy8.to_host(), want, 1.0 / 128, ldx % 4 == 0 ? kAbsFrac : kFp8TensorCoreAbsFrac, 1e-5,
                      "matmul_fp8 strided");
  }
}

namespace {

void check_routed(int64_t k, std::mt19937& rng) {
  CAPTURE(k);
  // 3 tokens x 4 slots over 6 experts [n = 300, k], rank 1 of 2.
  const int64_t S = 3, K = 4, E = 6, n = 300, ld_scale = k / 128;
  const auto x = test::random_bf16(static_cast<size_t>(S * k), rng, 2.0f);
  std::uniform_int_distribution<int> code(0, 253);
  std::uniform_real_distribution<float> sd(1e-4f, 3e-3f);
  std::vector<std::unique_ptr<DeviceBuffer<uint8_t>>> dw;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> ds;
  std::vector<cpu::Fp8Matrix> table;
  for (int64_t e = 0; e < E; ++e) {
    std::vector<uint8_t> w(static_cast<size_t>(n * k));
    for (auto& c : w) {
      const int v = code(rng);
      c = uint8_t(v >= 127 ? v + 1 : v);
    }
    std::vector<float> si(static_cast<size_t>((n + 127) / 128 * ld_scale));
    for (auto& v : si) v = sd(rng);
    dw.push_back(std::make_unique<DeviceBuffer<uint8_t>>(w));
    ds.push_back(std::make_unique<DeviceBuffer<float>>(si));
    table.push_back(cpu::Fp8Matrix{dw.back()->get(), ds.back()->get()});
  }
  const std::vector<int32_t> idx = {5, 0, 3, 2, 1, 1, 4, 0, 2, 3, 5, 4};
  DeviceBuffer<float> dx(x);
  DeviceBuffer<int32_t> didx(idx), drows(idx.size());
  DeviceBuffer<cpu::Fp8Matrix> dtable(table);
  const int rank = 1, n_ranks = 2;
  DeviceBuffer<float> dy(static_cast<size_t>(S * K * n));
  DSA_CUDA_OK(cudaMemset(dy.get(), 0xFF, static_cast<size_t>(S * K * n) * sizeof(float)));  // NaN: zeros must be written
  cuda::matmul_fp8_routed(dx.get(), k, K, didx.get(), S * K, rank, n_ranks, dtable.get(), k, n, dy.get(), n, nullptr);
  cuda::moe_owned_rows(didx.get(), S * K, rank, n_ranks, drows.get(), nullptr);
  const std::vector<float> y = dy.to_host();
  const std::vector<int32_t> rows = drows.to_host();
  for (int64_t p = 0; p < S * K; ++p) {
    CAPTURE(p);
    const int32_t e = idx[size_t(p)];
    std::vector<float> want(static_cast<size_t>(n), 0.0f);
    if (e % n_ranks == rank) {
      DeviceBuffer<float> one(static_cast<size_t>(n));
      cuda::matmul_fp8(dx.get() + (p / K) * k, k, 1, k, dw[size_t(e)]->get(), k, ds[size_t(e)]->get(), ld_scale, n,
                       one.get(), n, nullptr);
      want = one.to_host();
    }
    CHECK(std::vector<float>(y.begin() + p * n, y.begin() + (p + 1) * n) == want);
    CHECK(rows[size_t(p)] == (e % n_ranks == rank ? int32_t(p) : -1));
  }
}

}  // namespace

TEST_CASE(
    "gpu matmul_fp8_routed: each owned pair's row is matmul_fp8 of its expert for that row alone; moe_owned_rows") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(31);
  // k = 512: past one warp step. k = 7168: matmul_fp8's 300 rows are too few blocks for the GPU,
  // so it splits k over blocks (then adds the parts in the unsplit order), the routed GEMV does not.
  // k = 1152: 9 blocks, split in parts of 5, so the second part starts off a multiple of 4.
  check_routed(512, rng);
  check_routed(7168, rng);
  check_routed(1152, rng);
}

TEST_CASE("gpu matmul_fp8_grouped: each group's rows through the row map, as the CPU reference") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(32);
  // 9 groups [n = 300: a partial column tile and scale row; k = 1024]: empty ones (one without
  // weights), 1, 17, 63, 64, 65, 130 and 200 rows (partial and whole 64-row tiles, several tiles);
  // the 3 rows before group 0 untouched. The grouped rows read 560 quantised rows through a
  // shuffled map (a token's row read twice, as by two of its experts), or in order without one.
  const int64_t Q = 560, k = 1024, n = 300, n_kb = k / 128, G = 9;
  const auto x = test::random_bf16(static_cast<size_t>(Q * k), rng, 2.0f);
  std::vector<uint8_t> codes(static_cast<size_t>(Q * k));
  std::vector<float> scales(static_cast<size_t>(Q * n_kb));
  for (int64_t q = 0; q < Q; ++q)
    cpu::act_quant(x.data() + q * k, k, 128, codes.data() + q * k, scales.data() + q * n_kb);
  const std::vector<int64_t> sizes = {0, 1, 63, 0, 64, 65, 130, 17, 200};
  std::vector<int32_t> first = {3};
  for (int64_t s : sizes) first.push_back(first.back() + int32_t(s));
  const int64_t rows_end = first.back();
  std::vector<int32_t> row_map(static_cast<size_t>(rows_end));
  std::uniform_int_distribution<int32_t> pick(0, int32_t(Q - 1));
  for (auto& r : row_map) r = pick(rng);
  row_map[10] = row_map[200];
  std::uniform_int_distribution<int> code(0, 253);
  std::uniform_real_distribution<float> sd(1e-4f, 3e-3f);
  std::vector<std::vector<uint8_t>> w;
  std::vector<std::vector<float>> si;
  std::vector<std::unique_ptr<DeviceBuffer<uint8_t>>> dw;
  std::vector<std::unique_ptr<DeviceBuffer<float>>> dsi;
  std::vector<cpu::Fp8Matrix> table(G), device_table(G);
  for (int64_t g = 0; g < G; ++g) {
    if (g == 3) continue;  // empty, no weights
    w.emplace_back(static_cast<size_t>(n * k));
    for (auto& c : w.back()) {
      const int v = code(rng);
      c = uint8_t(v >= 127 ? v + 1 : v);
    }
    si.emplace_back(static_cast<size_t>((n + 127) / 128 * n_kb));
    for (auto& v : si.back()) v = sd(rng);
    dw.push_back(std::make_unique<DeviceBuffer<uint8_t>>(w.back()));
    dsi.push_back(std::make_unique<DeviceBuffer<float>>(si.back()));
    table[size_t(g)] = {w.back().data(), si.back().data()};
    device_table[size_t(g)] = {dw.back()->get(), dsi.back()->get()};
  }
  DeviceBuffer<uint8_t> dcodes(codes);
  DeviceBuffer<float> dscales(scales);
  DeviceBuffer<int32_t> dmap(row_map), dfirst(first);
  DeviceBuffer<cpu::Fp8Matrix> dtable(device_table);
  for (const bool mapped : {true, false}) {
    CAPTURE(mapped);
    std::vector<float> want(static_cast<size_t>(rows_end * n), -7.0f);
    cpu::matmul_fp8_grouped(codes.data(), scales.data(), k, mapped ? row_map.data() : nullptr, first.data(), G,
                            table.data(), n, want.data(), n);
    DeviceBuffer<float> dy(std::vector<float>(want.size(), -7.0f));
    cuda::matmul_fp8_grouped(dcodes.get(), dscales.get(), k, mapped ? dmap.get() : nullptr, dfirst.get(), first.data(),
                             G, dtable.get(), n, dy.get(), n, nullptr);
    const std::vector<float> got = dy.to_host();
    const size_t grouped = size_t(first[0] * n);
    CHECK(std::vector<float>(got.begin(), got.begin() + grouped) ==
          std::vector<float>(want.begin(), want.begin() + grouped));
    test::check_close(std::vector<float>(got.begin() + grouped, got.end()),
                      std::vector<float>(want.begin() + grouped, want.end()), 1.0 / 128, kFp8TensorCoreAbsFrac, 1e-5,
                      "matmul_fp8_grouped");
  }
}

TEST_CASE("gpu GEMVs of narrow weights split k over blocks and keep the unsplit bits") {
  DSA_REQUIRE_GPU();
  std::mt19937 rng(33);
  // bf16 [64, 7168] (the indexer's weights_proj): alone, 8 blocks of rows split k; as 40 products of
  // one batch (320 blocks) they do not. Every product must equal the single one bit for bit, and
  // that one the reference within the GEMV tolerance.
  // k = 7424: a last chunk of 256.
  const int64_t n = 64, batch = 40;
  for (const int64_t k : {7168, 7424}) {
    CAPTURE(k);
    const auto x = test::random_bf16(static_cast<size_t>(k), rng);
    const auto w = test::to_bf16_bits(test::random_bf16(static_cast<size_t>(n * k), rng, 0.05f));
    DeviceBuffer<float> dx(x), dy(static_cast<size_t>(n)), dyb(static_cast<size_t>(batch * n));
    DeviceBuffer<uint16_t> dw(w);
    for (const bool round_out : {false, true}) {
      CAPTURE(round_out);
      cuda::matmul_bf16(dx.get(), k, 1, k, dw.get(), k, n, dy.get(), n, round_out, nullptr);
      cuda::matmul_bf16_batched(dx.get(), k, 0, 1, k, dw.get(), k, 0, n, dyb.get(), n, n, batch, round_out, nullptr);
      const std::vector<float> one = dy.to_host(), many = dyb.to_host();
      for (int64_t b = 0; b < batch; ++b) CHECK(std::vector<float>(many.begin() + b * n, many.begin() + (b + 1) * n) == one);
      std::vector<float> want(static_cast<size_t>(n));
      cpu::matmul_bf16_scalar(x.data(), k, 1, k, w.data(), k, n, want.data(), n, round_out);
      test::check_close(one, want, round_out ? 1.0 / 128 : 1e-5, 1e-4, 1e-5, "matmul_bf16 split");
    }
  }
}
