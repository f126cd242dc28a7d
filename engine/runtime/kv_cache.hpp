// Paged caches of one model: per layer, the MLA latent records (bf16 or FP8 FlashMLA-style) and the
// indexer FP8 keys + fp32 scales, both in 64-token pages drawn from one shared page pool. A page id
// means the same page in every layer. A Sequence owns its page table; token t lives in page
// pages[t / 64], row t % 64 (the kernels' layout, kernels/cpu/attention.hpp and indexer.hpp).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/api/result.hpp"
#include "engine/backend/backend.hpp"
#include "engine/model/config.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/indexer.hpp"

namespace dsa {

inline constexpr int64_t kPageTokens = 64;

struct Sequence {
  std::vector<int32_t> pages;  // page table
  int64_t n_cached = 0;        // tokens 0..n_cached-1 hold valid cache entries
};

class KvCache {
 public:
  // memory: where the arenas live (a GPU's memory for a model on CUDA); null for host memory.
  KvCache(const ModelConfig& cfg, cpu::LatentFormat format, int64_t n_pages, Backend* memory = nullptr);

  // Grows seq's page table to hold n_tokens; an error when the pool is exhausted.
  Result<void> reserve(Sequence& seq, int64_t n_tokens);
  // Returns seq's pages to the pool and empties it.
  void release(Sequence& seq);
  // Cuts seq back to its first n_tokens (at most n_cached) and returns the pages they do not use.
  void truncate(Sequence& seq, int64_t n_tokens);
  // Copies src's entries of tokens 0..n_tokens-1 (n_tokens <= src.n_cached) into dst, which holds
  // no entries and pages for them; dst then holds those n_tokens, byte for byte. In the mirrors too.
  void copy_prefix(const Sequence& src, Sequence& dst, int64_t n_tokens);

  // Mirrors: caches of the same geometry in other ranks' memory (one per GPU of a RankGroup). This
  // cache hands out the pages; a page id means the same slots in every mirror, and copy_prefix
  // copies in each. The mirror must outlive this cache's use.
  void add_mirror(KvCache& mirror);
  KvCache& mirror(size_t i) const { return *mirrors_[i]; }
  size_t n_mirrors() const { return mirrors_.size(); }

  // A copy of this pool held by other processes (the worker ranks of a process group,
  // engine/model/rank_processes.hpp): told of every copy_prefix, dropped (and told so) with the pool.
  class Replica {
   public:
    virtual ~Replica() = default;
    virtual void copy_prefix(const Sequence& src, const Sequence& dst, int64_t n_tokens) = 0;
  };
  void set_replica(std::unique_ptr<Replica> replica) { replica_ = std::move(replica); }
  Replica* replica() const { return replica_.get(); }

  cpu::LatentCacheView latent(int64_t layer, const Sequence& seq) const;
  cpu::IndexerCacheView indexer(int64_t layer, const Sequence& seq) const;
  uint8_t* latent_arena(int64_t layer) { return latent_[layer].data(); }
  uint8_t* indexer_arena(int64_t layer) { return indexer_[layer].data(); }
  // Decodes token pos's latent record: c_kv [kv_lora] and k_pe [rope] as fp32 (bf16 values). Host
  // memory only.
  void read_latent(int64_t layer, const Sequence& seq, int64_t pos, float* c_kv, float* k_pe) const;

  cpu::LatentFormat format() const { return format_; }
  size_t record_bytes() const { return record_bytes_; }
  size_t indexer_page_bytes() const { return indexer_page_bytes_; }
  Backend* memory() const { return memory_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t n_pages() const { return n_pages_; }
  // Unique among the pools of this process, never reused: what a recorded decode step
  // (BackendModel) names the arenas it was recorded on by.
  uint64_t id() const { return id_; }

 private:
  cpu::LatentFormat format_;
  uint64_t id_;
  int64_t n_pages_;
  int64_t kv_lora_, rope_dim_, index_head_dim_;
  size_t record_bytes_, indexer_page_bytes_;
  Backend* memory_;
  // Host arenas are zeroed by calloc, which maps fresh (already zero) pages from the system for
  // large sizes: memory is committed when a page is first written, so a pool sized for many long
  // requests costs what its requests use. Backend arenas come zeroed from the backend.
  struct Arena {
    struct Free {
      Backend* memory;
      void operator()(uint8_t* p) const {
        if (memory) {
          memory->release(p);
        } else {
          std::free(p);
        }
      }
    };
    std::unique_ptr<uint8_t, Free> bytes;
    uint8_t* data() const { return bytes.get(); }
  };
  std::vector<Arena> latent_, indexer_;  // [layer] arenas of n_pages pages
  std::vector<int32_t> free_;                            // free page ids, popped from the back
  std::vector<KvCache*> mirrors_;
  std::unique_ptr<Replica> replica_;
};

}  // namespace dsa
