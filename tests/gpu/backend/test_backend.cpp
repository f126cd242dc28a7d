// CudaBackend: its memory (zeroed allocations, uploads and downloads, strided copies, resident
// weights, running short) and ops forwarded on its stream, against host data and the CPU kernels.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/backend_cuda.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/rows.hpp"
#include "kernels/cpu/topk.hpp"
#include "kernels/cuda/indexer.hpp"
#include "tests/gpu/kernels/gpu_test_support.hpp"

using namespace dsa;

namespace {

template <class T>
std::vector<T> download(Backend& be, const T* p, size_t n) {
  std::vector<T> host(n);
  be.download(host.data(), p, n * sizeof(T));
  return host;
}

}  // namespace

TEST_CASE("CudaBackend memory: zeroed allocations, round trips, strided copies") {
  DSA_REQUIRE_GPU();
  REQUIRE(cuda_device_count() >= 1);
  CudaBackend be(0);
  CHECK(std::string(be.name()) == "cuda");
  const size_t n = (size_t(8) << 20) + 3;  // floats; re-allocation likely gets the same memory back

  std::vector<float> ramp(n);
  std::iota(ramp.begin(), ramp.end(), 1.0f);
  {
    Buffer<float> dirty(be, n);
    be.upload(dirty.data(), ramp.data(), n * sizeof(float));
  }
  Buffer<float> a(be, n);
  const auto zeros = download(be, a.data(), n);
  CHECK(std::all_of(zeros.begin(), zeros.end(), [](float v) { return v == 0.0f; }));

  // The host buffer may be reused as soon as upload returns.
  std::vector<float> host = ramp;
  be.upload(a.data(), host.data(), n * sizeof(float));
  std::fill(host.begin(), host.end(), -1.0f);
  CHECK(download(be, a.data(), n) == ramp);

  Buffer<float> b(be, n);
  be.copy(b.data(), a.data(), n * sizeof(float));
  CHECK(download(be, b.data(), n) == ramp);

  // Rows 2..5 of a 10-float-stride matrix, 7 floats each, into a 9-float-stride one at row 1.
  const size_t ld_src = 10, ld_dst = 9, width = 7, rows = 4;
  Buffer<float> c(be, 64);
  be.copy_rows(c.data() + ld_dst, ld_dst * sizeof(float), a.data() + 2 * ld_src, ld_src * sizeof(float),
               width * sizeof(float), rows);
  const auto got = download(be, c.data(), 64);
  for (size_t i = 0; i < 64; ++i) {
    const size_t r = i / ld_dst, col = i % ld_dst;
    const bool copied = r >= 1 && r < 1 + rows && col < width;
    CAPTURE(i);
    CHECK(got[i] == (copied ? ramp[(r - 1 + 2) * ld_src + col] : 0.0f));
  }
}

TEST_CASE("CudaBackend resident copies, available memory and running short") {
  DSA_REQUIRE_GPU();
  CudaBackend be(0);
  std::vector<uint16_t> weights((size_t(70) << 20) / sizeof(uint16_t) + 11);  // more than one 64 MiB piece
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = uint16_t(i * 2654435761u >> 7);
  const auto* dev = static_cast<const uint16_t*>(be.resident(weights.data(), weights.size() * sizeof(uint16_t)));
  REQUIRE(dev != nullptr);
  const std::vector<uint16_t> original = weights;
  std::fill(weights.begin(), weights.end(), uint16_t(0));  // the copy is the backend's own
  CHECK(download(be, dev, original.size()) == original);

  const size_t free_before = be.available_memory();
  CHECK(free_before > 0);
  {
    Buffer<uint8_t> big(be, size_t(256) << 20);
    CHECK(be.available_memory() + (size_t(128) << 20) <= free_before);
  }
  CHECK_THROWS_AS(be.allocate(size_t(1) << 50), std::bad_alloc);
  Buffer<int32_t> after(be, 5);  // still usable after running short
  const auto z = download(be, after.data(), 5);
  CHECK(z == std::vector<int32_t>(5, 0));
}

TEST_CASE("CudaBackend ops run the CUDA kernels on its stream, with the CPU's results") {
  DSA_REQUIRE_GPU();
  CudaBackend be(0);
  std::mt19937 rng(50);

  // Embedding rows of a resident table, then the router over them as logits.
  const int64_t vocab = 40, dim = 256;
  std::vector<uint16_t> table(static_cast<size_t>(vocab * dim));
  for (auto& v : table) v = float_to_bf16(std::normal_distribution<float>(0.0f, 2.0f)(rng));
  const std::vector<int32_t> ids = {3, 39, 0, 3, 17};
  const int64_t n = int64_t(ids.size());
  std::vector<float> logits(static_cast<size_t>(n * dim));
  cpu::embed_rows(table.data(), dim, ids.data(), n, logits.data());
  std::vector<float> bias(static_cast<size_t>(dim));
  for (auto& v : bias) v = std::normal_distribution<float>(0.0f, 0.05f)(rng);
  std::vector<int32_t> idx_want(static_cast<size_t>(n * 8));
  std::vector<float> w_want(idx_want.size());
  for (int64_t t = 0; t < n; ++t)
    cpu::moe_route(logits.data() + t * dim, bias.data(), dim, 8, 4, 8, true, 2.5f, idx_want.data() + t * 8,
                   w_want.data() + t * 8);

  const auto* dtable = static_cast<const uint16_t*>(be.resident(table.data(), table.size() * sizeof(uint16_t)));
  Buffer<int32_t> dids(be, ids.size()), didx(be, idx_want.size());
  Buffer<float> dlogits(be, logits.size()), dbias(be, bias.size()), dw(be, w_want.size());
  be.upload(dids.data(), ids.data(), ids.size() * sizeof(int32_t));
  be.upload(dbias.data(), bias.data(), bias.size() * sizeof(float));
  be.embed_rows(dtable, dim, dids.data(), n, dlogits.data());
  be.moe_route(dlogits.data(), dbias.data(), n, dim, 8, 4, 8, true, 2.5f, didx.data(), dw.data());
  CHECK(download(be, dlogits.data(), logits.size()) == logits);
  CHECK(download(be, didx.data(), idx_want.size()) == idx_want);
  test::check_exact(download(be, dw.data(), w_want.size()), w_want, "routing weights");

  // top-k over rows of a strided score matrix with per-row candidate counts (the kernel's n is the
  // row stride).
  const int64_t n_rows = 3, ld = 500, k = 64, ld_out = 70;
  std::vector<float> scores(static_cast<size_t>(n_rows * ld));
  for (auto& v : scores) v = float(std::uniform_int_distribution<int>(0, 9)(rng));  // ties
  const std::vector<int32_t> n_valid = {500, 300, 40};
  Buffer<float> dscores(be, scores.size());
  Buffer<int32_t> dvalid(be, n_valid.size()), dout(be, size_t(n_rows * ld_out));
  be.upload(dscores.data(), scores.data(), scores.size() * sizeof(float));
  be.upload(dvalid.data(), n_valid.data(), n_valid.size() * sizeof(int32_t));
  be.topk_positions(dscores.data(), ld, n_rows, dvalid.data(), k, dout.data(), ld_out);
  const auto out = download(be, dout.data(), size_t(n_rows * ld_out));
  for (int64_t r = 0; r < n_rows; ++r) {
    CAPTURE(r);
    const int64_t kr = std::min<int64_t>(k, n_valid[size_t(r)]);
    std::vector<int32_t> want(static_cast<size_t>(k), -1);
    cpu::topk_positions(scores.data() + r * ld, n_valid[size_t(r)], kr, want.data());
    CHECK(std::vector<int32_t>(out.begin() + r * ld_out, out.begin() + r * ld_out + k) == want);
  }
}

TEST_CASE("CudaBackend::supports names the first model width its kernels do not take") {
  DSA_REQUIRE_GPU();
  CudaBackend be(0);
  ModelConfig c;  // DeepSeek-V3.2's published values
  CHECK(be.supports(c).ok());
  c.index_n_heads = 256;
  const auto r = be.supports(c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "the CUDA kernels take index_n_heads <= 128; the model's index_n_heads is 256");
  c = ModelConfig{};
  c.index_head_dim = 144;
  CHECK(be.supports(c).error().message ==
        "the CUDA kernels take index_head_dim = 16 * (1..8); the model's index_head_dim is 144");
  // V3.2's 64 indexer heads of 128 fit the indexer's shared memory on the GPUs the default build
  // targets (sm_80 and later).
  const cuda::SharedMemoryNeed smem = cuda::indexer_scores_smem(64, 128);
  CHECK(smem.bytes <= smem.limit);
}

TEST_CASE("CudaBackend small uploads return at once through the staging buffers, and the host buffer is free at once") {
  DSA_REQUIRE_GPU();
  CudaBackend be(0);
  // 20 uploads (more than the 8 staging buffers) from one host vector rewritten after each call.
  const size_t n = 4096;
  Buffer<int32_t> dst(be, 20 * n);
  std::vector<int32_t> host(n);
  for (int u = 0; u < 20; ++u) {
    for (size_t i = 0; i < n; ++i) host[i] = int32_t(u * 100000 + int(i));
    be.upload(dst.data() + size_t(u) * n, host.data(), n * sizeof(int32_t));
    std::fill(host.begin(), host.end(), -1);  // reused at once
  }
  const auto got = download(be, dst.data(), 20 * n);
  bool ok = true;
  for (int u = 0; u < 20; ++u)
    for (size_t i = 0; i < n; ++i) ok = ok && got[size_t(u) * n + i] == int32_t(u * 100000 + int(i));
  CHECK(ok);
  // A large upload (past the staging size) takes the waiting path: same result.
  std::vector<float> big((size_t(1) << 20) / sizeof(float) + 17, 2.5f);
  Buffer<float> dbig(be, big.size());
  be.upload(dbig.data(), big.data(), big.size() * sizeof(float));
  CHECK(download(be, dbig.data(), big.size()) == big);
}
