// Each CPU kernel against golden vectors from reference_model.py. Tolerances: outputs the reference
// rounds to bf16 must match exactly where our summation order is the reference's, else within one
// bf16 step; fp32 outputs within a stated relative error.
#include <algorithm>
#include <cstring>

#include "kernel_test_support.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/hadamard.hpp"
#include "kernels/cpu/indexer.hpp"
#include "kernels/cpu/moe.hpp"
#include "kernels/cpu/norm.hpp"
#include "kernels/cpu/quant.hpp"
#include "kernels/cpu/rope.hpp"
#include "kernels/cpu/topk.hpp"

using namespace dsa;
using dsa::test::Golden;
using dsa::test::max_bf16_ulps;

TEST_CASE("act_quant and fp8_roundtrip match the reference bit for bit") {
  const auto& g = Golden::get();
  const auto x = g.array<float>("act_quant", "x");
  std::vector<uint8_t> codes(x.size());
  std::vector<float> scales(x.size() / 128), rt(x.size());
  cpu::act_quant(x.data(), int64_t(x.size()), 128, codes.data(), scales.data());
  CHECK(codes == g.array<uint8_t>("act_quant", "codes"));
  CHECK(scales == g.array<float>("act_quant", "scales"));
  cpu::fp8_roundtrip(x.data(), int64_t(x.size()), 128, rt.data());
  CHECK(rt == g.array<float>("act_quant", "roundtrip"));
}

TEST_CASE("matmul_fp8 matches the reference FP8 linear") {
  const auto& g = Golden::get();
  for (const char* c : {"linear_fp8_decode", "linear_fp8_prefill"}) {
    CAPTURE(c);
    const auto x = g.array<float>(c, "x");
    const auto w = g.array<uint8_t>(c, "w");
    const auto s = g.array<float>(c, "scale_inv");
    const auto want = g.array<float>(c, "y");
    const int64_t m = g.shape(c, "x")[0], k = g.shape(c, "x")[1], n = g.shape(c, "w")[0];
    std::vector<float> y(size_t(m * n)), ys(y.size());
    // The scalar form follows the reference's summation exactly; the vector form may differ by a step.
    cpu::matmul_fp8_scalar(x.data(), k, m, k, w.data(), k, s.data(), k / 128, n, ys.data(), n);
    CHECK(max_bf16_ulps(ys, want, "fp8 scalar") == 0);
    cpu::matmul_fp8(x.data(), m, k, w.data(), s.data(), n, y.data());
    CHECK(max_bf16_ulps(y, want, "fp8 simd") <= 1);
  }
}

TEST_CASE("matmul_bf16 matches the reference bf16 linear") {
  const auto& g = Golden::get();
  for (const char* c : {"linear_bf16_decode", "linear_bf16_prefill"}) {
    CAPTURE(c);
    const auto x = g.array<float>(c, "x");
    const auto wf = g.array<float>(c, "w");
    const auto want = g.array<float>(c, "y");
    const int64_t m = g.shape(c, "x")[0], k = g.shape(c, "x")[1], n = g.shape(c, "w")[0];
    std::vector<uint16_t> w(wf.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = float_to_bf16(wf[i]);
    std::vector<float> y(size_t(m * n)), ys(y.size());
    cpu::matmul_bf16_scalar(x.data(), k, m, k, w.data(), k, n, ys.data(), n, true);
    CHECK(max_bf16_ulps(ys, want, "bf16 scalar") == 0);
    cpu::matmul_bf16(x.data(), m, k, w.data(), n, y.data(), true);
    CHECK(max_bf16_ulps(y, want, "bf16 simd") <= 1);
  }
}

TEST_CASE("rms_norm, the fused residual form and layer_norm match the reference") {
  const auto& g = Golden::get();
  const auto x = g.array<float>("rms_norm", "x");
  const auto w = g.array<float>("rms_norm", "w");
  const float eps = float(g.param("rms_norm", "eps"));
  const int64_t rows = g.shape("rms_norm", "x")[0], n = g.shape("rms_norm", "x")[1];
  std::vector<float> y(x.size());
  cpu::rms_norm(x.data(), rows, n, w.data(), eps, y.data());
  CHECK(max_bf16_ulps(y, g.array<float>("rms_norm", "y"), "rms_norm") == 0);
  auto res = g.array<float>("rms_norm", "residual");
  cpu::add_rms_norm(x.data(), res.data(), rows, n, w.data(), eps, y.data());
  CHECK(max_bf16_ulps(y, g.array<float>("rms_norm", "y_fused"), "add_rms_norm") == 0);
  CHECK(res == g.array<float>("rms_norm", "residual_out"));

  const auto lx = g.array<float>("layer_norm", "x");
  std::vector<float> ly(lx.size());
  cpu::layer_norm(lx.data(), g.shape("layer_norm", "x")[0], g.shape("layer_norm", "x")[1],
                  g.array<float>("layer_norm", "w").data(), g.array<float>("layer_norm", "b").data(),
                  float(g.param("layer_norm", "eps")), ly.data());
  CHECK(max_bf16_ulps(ly, g.array<float>("layer_norm", "y"), "layer_norm") == 0);
}

TEST_CASE("hadamard matches the reference for sizes 128 and 64") {
  const auto& g = Golden::get();
  for (const char* c : {"hadamard_128", "hadamard_64"}) {
    CAPTURE(c);
    const auto x = g.array<float>(c, "x");
    std::vector<float> y(x.size());
    cpu::hadamard(x.data(), g.shape(c, "x")[0], g.shape(c, "x")[1], g.param(c, "scale"), y.data());
    CHECK(max_bf16_ulps(y, g.array<float>(c, "y"), c) == 0);
  }
}

TEST_CASE("yarn_inv_freq and both rope layouts match the reference") {
  const auto& g = Golden::get();
  for (const char* c : {"rope_64", "rope_32"}) {
    CAPTURE(c);
    const auto shp = g.shape(c, "x");  // [tokens, heads, dim]
    const auto inv = cpu::yarn_inv_freq(shp[2], g.param(c, "theta"), g.param(c, "factor"),
                                        int64_t(g.param(c, "original_max_pos")), g.param(c, "beta_fast"),
                                        g.param(c, "beta_slow"));
    // NumPy's vectorised float32 power is not correctly rounded (the C library's is): a step of the
    // base frequency, two of the blend, so 2.5e-7 relative; the rope checks use the reference's.
    const auto inv_ref = g.array<float>(c, "inv_freq");
    CHECK(dsa::test::max_rel_err(inv, inv_ref, 0.0) <= 2.5e-7);
    const auto pos32 = g.array<int32_t>(c, "pos");
    const std::vector<int64_t> pos(pos32.begin(), pos32.end());
    for (auto [layout, name] : {std::pair{cpu::RopeLayout::interleaved, "interleaved"},
                                std::pair{cpu::RopeLayout::rotate_half, "rotate_half"}}) {
      auto x = g.array<float>(c, "x");
      cpu::apply_rope(x.data(), shp[0], shp[1], shp[1] * shp[2], shp[2], shp[2], pos.data(), inv_ref.data(), layout);
      // cos/sin come from different libms (NumPy's vs the C library): one bf16 step allowed.
      CHECK(max_bf16_ulps(x, g.array<float>(c, name), name) <= 1);
    }
  }
}

TEST_CASE("topk_positions matches topk_lower_index with ties") {
  const auto& g = Golden::get();
  const auto s = g.array<float>("topk", "scores");
  const int64_t k = int64_t(g.param("topk", "k"));
  std::vector<int32_t> out(static_cast<size_t>(k));
  cpu::topk_positions(s.data(), int64_t(s.size()), k, out.data());
  CHECK(out == g.array<int32_t>("topk", "idx"));
}

TEST_CASE("indexer cache write and scores match the reference fp8_index") {
  const auto& g = Golden::get();
  const auto k = g.array<float>("indexer", "k");
  const auto kc = g.array<uint8_t>("indexer", "k_codes");
  const auto ks = g.array<float>("indexer", "k_scales");
  const int64_t n = g.shape("indexer", "k")[0], dim = g.shape("indexer", "k")[1];
  const int64_t n_q = g.shape("indexer", "q_codes")[0], heads = g.shape("indexer", "q_codes")[1];
  // Pages deliberately out of order in the pool.
  const std::vector<int32_t> pages = {4, 0, 2};
  std::vector<uint8_t> arena(5 * cpu::indexer_page_bytes(dim), 0xff);
  for (int64_t t = 0; t < n; ++t) cpu::indexer_write(arena.data(), pages.data(), dim, t, k.data() + t * dim);
  const cpu::IndexerCacheView view{arena.data(), pages.data(), dim, cpu::indexer_page_bytes(dim)};
  for (int64_t t = 0; t < n; ++t) {
    std::vector<uint8_t> codes(static_cast<size_t>(dim));
    float scale = 0;
    cpu::indexer_read(view, t, codes.data(), &scale);
    CHECK(std::equal(codes.begin(), codes.end(), kc.begin() + t * dim));
    CHECK(scale == ks[size_t(t)]);
  }
  const auto nk32 = g.array<int32_t>("indexer", "n_keys");
  const std::vector<int64_t> n_keys(nk32.begin(), nk32.end());
  const auto want = g.array<float>("indexer", "scores");
  std::vector<float> got(size_t(n_q * n), 0.0f), got_scalar(got.size(), 0.0f);
  const auto q = g.array<uint8_t>("indexer", "q_codes");
  const auto w = g.array<float>("indexer", "w");
  cpu::indexer_scores_scalar(q.data(), w.data(), n_q, heads, view, n_keys.data(), got_scalar.data(), n);
  CHECK(got_scalar == want);
  cpu::indexer_scores(q.data(), w.data(), n_q, heads, view, n_keys.data(), got.data(), n);
  CHECK(dsa::test::max_rel_err(got, want, 1e-3) < 1e-5);
}

TEST_CASE("sparse_mla_decode matches the reference absorbed attention in both cache formats") {
  const auto& g = Golden::get();
  const char* c = "mla_decode";
  const auto c_kv = g.array<float>(c, "c_kv");
  const auto kv_cache = g.array<float>(c, "kv_cache");
  const auto pe = g.array<float>(c, "pe_cache");
  const int64_t n = g.shape(c, "c_kv")[0], kv_lora = g.shape(c, "c_kv")[1], rope = g.shape(c, "pe_cache")[1];
  const int64_t heads = g.shape(c, "q_abs")[0];
  const auto sel = g.array<int32_t>(c, "sel");
  const auto want = g.array<float>(c, "o_lat");
  for (auto fmt : {cpu::LatentFormat::bf16, cpu::LatentFormat::fp8}) {
    CAPTURE(int(fmt));
    const size_t rb = cpu::latent_record_bytes(fmt, kv_lora, rope);
    const int64_t n_pages = (n + 63) / 64;
    std::vector<int32_t> pages(static_cast<size_t>(n_pages));
    for (int64_t i = 0; i < n_pages; ++i) pages[size_t(i)] = int32_t(n_pages - 1 - i);
    std::vector<uint8_t> arena(size_t(n_pages) * 64 * rb);
    for (int64_t t = 0; t < n; ++t)
      cpu::latent_write(arena.data(), pages.data(), fmt, kv_lora, rope, t, c_kv.data() + t * kv_lora, pe.data() + t * rope);
    const cpu::LatentCacheView view{arena.data(), pages.data(), fmt, kv_lora, rope, rb};
    std::vector<float> ckv(static_cast<size_t>(kv_lora)), kpe(static_cast<size_t>(rope));
    bool same = true;
    for (int64_t t = 0; t < n; ++t) {
      cpu::latent_read(view, t, ckv.data(), kpe.data());
      same = same && std::equal(ckv.begin(), ckv.end(), kv_cache.begin() + t * kv_lora) &&
             std::equal(kpe.begin(), kpe.end(), pe.begin() + t * rope);
    }
    CHECK(same);  // the cache holds exactly the reference's fp8-round-tripped latents
    std::vector<float> o(size_t(heads * kv_lora));
    cpu::sparse_mla_decode(g.array<float>(c, "q_abs").data(), g.array<float>(c, "q_pe").data(), heads, view,
                           sel.data(), int64_t(sel.size()), float(g.param(c, "softmax_scale")), o.data());
    CHECK(max_bf16_ulps(o, want, "mla decode") <= 1);
  }
}

TEST_CASE("sparse_mha matches the reference prefill attention") {
  const auto& g = Golden::get();
  const auto q = g.array<float>("mha", "q");
  const auto kv = g.array<float>("mha", "kv");
  const auto pe = g.array<float>("mha", "k_pe");
  const auto sel = g.array<int32_t>("mha", "sel");
  const auto kv_shape = g.shape("mha", "kv");  // [S, H, nope + v]
  const int64_t heads = kv_shape[1], rope = g.shape("mha", "k_pe")[1];
  const int64_t nope = g.shape("mha", "q")[1] - rope, v_dim = kv_shape[2] - nope;
  std::vector<float> o(size_t(heads * v_dim));
  cpu::sparse_mha(q.data(), heads, nope, rope, v_dim, kv.data(), heads * (nope + v_dim), pe.data(), rope, sel.data(),
                  int64_t(sel.size()), float(g.param("mha", "softmax_scale")), o.data());
  CHECK(max_bf16_ulps(o, g.array<float>("mha", "o"), "mha") <= 1);
}

TEST_CASE("moe_route matches the reference router; swiglu the reference mlp") {
  const auto& g = Golden::get();
  for (const char* c : {"moe_small", "moe_v32"}) {
    CAPTURE(c);
    const auto logits = g.array<float>(c, "logits");
    const auto bias = g.array<float>(c, "bias");
    const auto want_idx = g.array<int32_t>(c, "idx");
    const auto want_w = g.array<float>(c, "weight");
    const int64_t T = g.shape(c, "logits")[0], E = g.shape(c, "logits")[1], K = int64_t(g.param(c, "topk"));
    std::vector<int32_t> idx(size_t(T * K));
    std::vector<float> w(size_t(T * K));
    for (int64_t t = 0; t < T; ++t)
      cpu::moe_route(logits.data() + t * E, bias.data(), E, int64_t(g.param(c, "n_group")),
                     int64_t(g.param(c, "topk_group")), K, true, float(g.param(c, "routed_scaling")),
                     idx.data() + t * K, w.data() + t * K);
    CHECK(idx == want_idx);
    CHECK(w == want_w);
  }
  const auto gate = g.array<float>("swiglu", "gate");
  const auto up = g.array<float>("swiglu", "up");
  std::vector<float> out(gate.size());
  cpu::swiglu(gate.data(), up.data(), int64_t(gate.size()), out.data());
  CHECK(max_bf16_ulps(out, g.array<float>("swiglu", "out"), "swiglu") == 0);
}
