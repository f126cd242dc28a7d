// The paged cache: pages from one shared pool, exhaustion as an error, records that read back.
#include <doctest/doctest.h>

#include <set>
#include <vector>

#include "engine/runtime/kv_cache.hpp"

namespace dsa::test {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.num_hidden_layers = 2;
  c.kv_lora_rank = 128;
  c.qk_rope_head_dim = 32;
  c.index_head_dim = 64;
  return c;
}

TEST_CASE("sequences draw distinct 64-token pages from one pool and give them back") {
  KvCache cache(small_config(), cpu::LatentFormat::fp8, 5);
  Sequence a, b;
  REQUIRE(cache.reserve(a, 65).ok());  // 2 pages
  CHECK(a.pages.size() == 2);
  REQUIRE(cache.reserve(a, 128).ok());  // still 2
  CHECK(a.pages.size() == 2);
  REQUIRE(cache.reserve(b, 190).ok());  // 3 pages
  CHECK(cache.free_pages() == 0);
  std::set<int32_t> all(a.pages.begin(), a.pages.end());
  all.insert(b.pages.begin(), b.pages.end());
  CHECK(all.size() == 5);

  auto r = cache.reserve(a, 129);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("pool exhausted") != std::string::npos);
  CHECK(a.pages.size() == 2);  // nothing taken on failure

  b.n_cached = 190;
  cache.release(b);
  CHECK(b.pages.empty());
  CHECK(b.n_cached == 0);
  CHECK(cache.free_pages() == 3);
  CHECK(cache.reserve(a, 320).ok());
}

TEST_CASE("latent records of both formats read back the FP8-round-tripped latent and the rope part") {
  const ModelConfig c = small_config();
  for (auto fmt : {cpu::LatentFormat::bf16, cpu::LatentFormat::fp8}) {
    KvCache cache(c, fmt, 3);
    Sequence seq;
    REQUIRE(cache.reserve(seq, 130).ok());
    std::vector<float> c_kv(128), k_pe(32);
    for (int i = 0; i < 128; ++i) c_kv[i] = i < 64 ? 1.0f : 0.5f;  // exact in e4m3 with a power-of-two scale
    for (int i = 0; i < 32; ++i) k_pe[i] = float(i) - 7.25f;
    cpu::latent_write(cache.latent_arena(1), seq.pages.data(), fmt, 128, 32, 129, c_kv.data(), k_pe.data());
    std::vector<float> got_kv(128), got_pe(32);
    cache.read_latent(1, seq, 129, got_kv.data(), got_pe.data());
    CHECK(got_kv == c_kv);
    CHECK(got_pe == k_pe);
    cache.read_latent(0, seq, 129, got_kv.data(), got_pe.data());  // another layer: untouched
    CHECK(got_pe[0] == 0.0f);
  }
}

}  // namespace
}  // namespace dsa::test
