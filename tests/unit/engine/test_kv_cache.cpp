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

TEST_CASE("copy_prefix copies the first tokens' entries of every layer, in runs of pages and in the mirrors") {
  const ModelConfig c = small_config();
  KvCache cache(c, cpu::LatentFormat::fp8, 12), mirror(c, cpu::LatentFormat::fp8, 12);
  cache.add_mirror(mirror);
  Sequence src, other, dst;
  // src's pages are not all consecutive: another sequence takes one in between.
  REQUIRE(cache.reserve(src, 128).ok());
  REQUIRE(cache.reserve(other, 64).ok());
  REQUIRE(cache.reserve(src, 300).ok());
  const int64_t n = 280;
  std::vector<float> c_kv(size_t(c.kv_lora_rank)), k_pe(size_t(c.qk_rope_head_dim)), key(size_t(c.index_head_dim));
  for (KvCache* k : {&cache, &mirror}) {
    for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
      for (int64_t t = 0; t < 300; ++t) {
        for (size_t j = 0; j < c_kv.size(); ++j) c_kv[j] = float((t * 7 + j * 3 + layer) % 23) - 11.0f;
        for (size_t j = 0; j < k_pe.size(); ++j) k_pe[j] = float((t + j + 2 * layer) % 9) - 4.0f;
        for (size_t j = 0; j < key.size(); ++j) key[j] = float((t * 5 + j + layer) % 13) - 6.0f;
        cpu::latent_write(k->latent_arena(layer), src.pages.data(), k->format(), c.kv_lora_rank, c.qk_rope_head_dim,
                          t, c_kv.data(), k_pe.data());
        cpu::indexer_write(k->indexer_arena(layer), src.pages.data(), c.index_head_dim, t, key.data());
      }
    }
  }
  src.n_cached = 300;
  REQUIRE(cache.reserve(dst, n).ok());
  cache.copy_prefix(src, dst, n);
  CHECK(dst.n_cached == n);
  std::vector<float> a_kv(c_kv.size()), a_pe(k_pe.size()), b_kv(c_kv.size()), b_pe(k_pe.size());
  std::vector<uint8_t> a_codes(key.size()), b_codes(key.size());
  float a_scale = 0, b_scale = 0;
  for (const KvCache* k : {&cache, &mirror}) {
    for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
      for (int64_t t = 0; t < n; ++t) {
        cpu::latent_read(k->latent(layer, src), t, a_kv.data(), a_pe.data());
        cpu::latent_read(k->latent(layer, dst), t, b_kv.data(), b_pe.data());
        cpu::indexer_read(k->indexer(layer, src), t, a_codes.data(), &a_scale);
        cpu::indexer_read(k->indexer(layer, dst), t, b_codes.data(), &b_scale);
        REQUIRE((a_kv == b_kv && a_pe == b_pe && a_codes == b_codes && a_scale == b_scale));
      }
    }
  }
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
