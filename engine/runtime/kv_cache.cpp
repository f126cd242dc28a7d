// Paged MLA latent and indexer key caches: one arena per layer and kind, pages handed out from one
// shared free list so a page id names the same slot range in every layer.
#include "engine/runtime/kv_cache.hpp"

#include <atomic>
#include <cstring>
#include <new>
#include <string>

namespace dsa {

namespace {

uint64_t next_pool_id() {
  static std::atomic<uint64_t> last{0};
  return ++last;
}

}  // namespace

KvCache::KvCache(const ModelConfig& cfg, cpu::LatentFormat format, int64_t n_pages, Backend* memory)
    : format_(format),
      id_(next_pool_id()),
      n_pages_(n_pages),
      kv_lora_(cfg.kv_lora_rank),
      rope_dim_(cfg.qk_rope_head_dim),
      index_head_dim_(cfg.index_head_dim),
      record_bytes_(cpu::latent_record_bytes(format, cfg.kv_lora_rank, cfg.qk_rope_head_dim)),
      indexer_page_bytes_(cpu::indexer_page_bytes(cfg.index_head_dim)),
      memory_(memory) {
  static_assert(kPageTokens == cpu::kLatentPageTokens && kPageTokens == cpu::kIndexerPageTokens);
  DSA_CHECK(n_pages > 0);
  const auto layers = static_cast<size_t>(cfg.num_hidden_layers);
  const auto pages = static_cast<size_t>(n_pages);
  auto arena = [memory](size_t bytes) {
    auto* p = static_cast<uint8_t*>(memory ? memory->allocate(bytes) : std::calloc(bytes, 1));
    if (!p) throw std::bad_alloc();
    return Arena{std::unique_ptr<uint8_t, Arena::Free>(p, Arena::Free{memory})};
  };
  for (size_t l = 0; l < layers; ++l) {
    latent_.push_back(arena(pages * kPageTokens * record_bytes_));
    indexer_.push_back(arena(pages * indexer_page_bytes_));
  }
  free_.reserve(pages);
  for (int64_t p = n_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

Result<void> KvCache::reserve(Sequence& seq, int64_t n_tokens) {
  const auto need = static_cast<size_t>((n_tokens + kPageTokens - 1) / kPageTokens);
  if (need <= seq.pages.size()) return {};
  if (need - seq.pages.size() > free_.size()) {
    return make_error("kv cache: pool exhausted: " + std::to_string(n_tokens) + " tokens need " +
                      std::to_string(need) + " pages of " + std::to_string(kPageTokens) + " tokens, " +
                      std::to_string(seq.pages.size()) + " held and " + std::to_string(free_.size()) + " free");
  }
  while (seq.pages.size() < need) {
    seq.pages.push_back(free_.back());
    free_.pop_back();
  }
  return {};
}

void KvCache::release(Sequence& seq) {
  for (auto it = seq.pages.rbegin(); it != seq.pages.rend(); ++it) free_.push_back(*it);
  seq.pages.clear();
  seq.n_cached = 0;
}

void KvCache::truncate(Sequence& seq, int64_t n_tokens) {
  DSA_CHECK(n_tokens >= 0 && n_tokens <= seq.n_cached, "truncate keeps a prefix of the cached tokens");
  const auto keep = static_cast<size_t>((n_tokens + kPageTokens - 1) / kPageTokens);
  while (seq.pages.size() > keep) {
    free_.push_back(seq.pages.back());
    seq.pages.pop_back();
  }
  seq.n_cached = n_tokens;
}

void KvCache::copy_prefix(const Sequence& src, Sequence& dst, int64_t n_tokens) {
  const auto n_pages = static_cast<size_t>((n_tokens + kPageTokens - 1) / kPageTokens);
  DSA_CHECK(n_tokens <= src.n_cached && dst.n_cached == 0 && dst.pages.size() >= n_pages);
  const size_t latent_page_bytes = static_cast<size_t>(kPageTokens) * record_bytes_;
  const auto copy = [this](uint8_t* to, const uint8_t* from, size_t bytes) {
    if (memory_) {
      memory_->copy(to, from, bytes);
    } else {
      std::memcpy(to, from, bytes);
    }
  };
  // Runs of pages consecutive in both tables (the pool hands pages out in order) go as one copy.
  for (size_t p = 0, run = 0; p < n_pages; p += run) {
    const auto from = static_cast<size_t>(src.pages[p]), to = static_cast<size_t>(dst.pages[p]);
    run = 1;
    while (p + run < n_pages && static_cast<size_t>(src.pages[p + run]) == from + run &&
           static_cast<size_t>(dst.pages[p + run]) == to + run)
      ++run;
    for (size_t layer = 0; layer < latent_.size(); ++layer) {
      copy(latent_[layer].data() + to * latent_page_bytes, latent_[layer].data() + from * latent_page_bytes,
           run * latent_page_bytes);
      copy(indexer_[layer].data() + to * indexer_page_bytes_, indexer_[layer].data() + from * indexer_page_bytes_,
           run * indexer_page_bytes_);
    }
  }
  dst.n_cached = n_tokens;
  for (KvCache* m : mirrors_) {
    Sequence d = dst;
    d.n_cached = 0;
    m->copy_prefix(src, d, n_tokens);
  }
  if (replica_) replica_->copy_prefix(src, dst, n_tokens);
}

void KvCache::add_mirror(KvCache& mirror) {
  DSA_CHECK(mirror.n_pages_ == n_pages_ && mirror.format_ == format_ && mirror.record_bytes_ == record_bytes_ &&
                mirror.indexer_page_bytes_ == indexer_page_bytes_ && mirror.latent_.size() == latent_.size(),
            "a mirror has the cache's geometry");
  mirrors_.push_back(&mirror);
}

cpu::LatentCacheView KvCache::latent(int64_t layer, const Sequence& seq) const {
  return cpu::LatentCacheView{latent_[static_cast<size_t>(layer)].data(), seq.pages.data(), format_, kv_lora_,
                              rope_dim_, record_bytes_};
}

cpu::IndexerCacheView KvCache::indexer(int64_t layer, const Sequence& seq) const {
  return cpu::IndexerCacheView{indexer_[static_cast<size_t>(layer)].data(), seq.pages.data(), index_head_dim_,
                               indexer_page_bytes_};
}

void KvCache::read_latent(int64_t layer, const Sequence& seq, int64_t pos, float* c_kv, float* k_pe) const {
  DSA_CHECK(!memory_, "read_latent reads host arenas");
  cpu::latent_read(latent(layer, seq), pos, c_kv, k_pe);
}

}  // namespace dsa
