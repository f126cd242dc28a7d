// `dsagent bench`'s DSA kernel lines (dsa_kernels.hpp): the caches and the query written through
// the backend's own ops (indexer_write, latent_write, act_quant) from seeded random values.
#include "cli/bench/dsa_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "cli/bench/repeat.hpp"
#include "kernels/cpu/indexer.hpp"

namespace dsa::cli {

namespace {

// Seconds per call of op on the backend, synchronised around each call.
template <class Op>
double seconds_per_call(Backend& be, Op&& op) {
  return seconds_per_call(op, [&] { be.synchronize(); });
}

template <class T>
Buffer<T> upload(Backend& be, const std::vector<T>& host) {
  Buffer<T> b(be, host.size());
  be.upload(b.data(), host.data(), host.size() * sizeof(T));
  return b;
}

std::vector<float> random_values(std::mt19937& rng, size_t n, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace

DsaKernelTimes time_dsa_kernels(Backend& be, const ModelConfig& cfg, cpu::LatentFormat fmt, int64_t keys) {
  std::mt19937 rng(7);
  const int64_t nh = cfg.index_n_heads, hd = cfg.index_head_dim, heads = cfg.num_attention_heads;
  const int64_t kv_lora = cfg.kv_lora_rank, rope = cfg.qk_rope_head_dim;
  const int64_t k = std::min(cfg.index_topk, keys);
  const int64_t n_pages = (keys + cpu::kIndexerPageTokens - 1) / cpu::kIndexerPageTokens;
  DsaKernelTimes out;
  out.keys = keys;
  out.selected = k;

  // One sequence's page table, shuffled, and every position of it.
  std::vector<int32_t> pages(static_cast<size_t>(n_pages));
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  std::vector<int64_t> pos(static_cast<size_t>(keys));
  std::iota(pos.begin(), pos.end(), 0);
  const Buffer<int32_t> d_pages = upload(be, pages);
  const Buffer<int64_t> d_pos = upload(be, pos);

  // Indexer: keys written in pieces (the host values of one piece at a time), the query quantised.
  const size_t page_bytes = cpu::indexer_page_bytes(hd);
  Buffer<uint8_t> index_arena(be, static_cast<size_t>(n_pages) * page_bytes);
  const int64_t piece = 4096;
  for (int64_t t0 = 0; t0 < keys; t0 += piece) {
    const int64_t n = std::min(piece, keys - t0);
    const Buffer<float> k_piece = upload(be, random_values(rng, static_cast<size_t>(n * hd), 1.0f));
    be.indexer_write(index_arena.data(), d_pages.data(), hd, n, d_pos.data() + t0, k_piece.data());
  }
  const Buffer<float> q = upload(be, random_values(rng, static_cast<size_t>(nh * hd), 1.0f));
  Buffer<uint8_t> q_codes(be, static_cast<size_t>(nh * hd));
  Buffer<float> q_scale(be, static_cast<size_t>(nh));
  be.act_quant(q.data(), nh * hd, hd, q_codes.data(), q_scale.data());
  const Buffer<float> w = upload(be, random_values(rng, static_cast<size_t>(nh), 0.1f));
  const Buffer<int32_t> n_keys = upload(be, std::vector<int32_t>{static_cast<int32_t>(keys)});
  Buffer<float> scores(be, static_cast<size_t>(keys));
  const cpu::IndexerCacheView index_view{index_arena.data(), d_pages.data(), hd, page_bytes};
  out.indexer.seconds = seconds_per_call(be, [&] {
    be.indexer_scores(q_codes.data(), w.data(), nh, index_view, 0, 1, n_keys.data(), keys, scores.data(), keys);
  });
  out.indexer.flops = 2.0 * double(nh) * double(hd) * double(keys);
  out.indexer.bytes = double(keys) * double(page_bytes) / double(cpu::kIndexerPageTokens);

  // Top-k of that row.
  Buffer<int32_t> sel(be, static_cast<size_t>(k));
  out.topk.seconds = seconds_per_call(be, [&] { be.topk_positions(scores.data(), keys, 1, n_keys.data(), k, sel.data(), k); });
  out.topk.bytes = 4.0 * double(keys);

  // Sparse attention over the selection: the selected positions' latent records written first.
  const size_t record = cpu::latent_record_bytes(fmt, kv_lora, rope);
  Buffer<uint8_t> latent_arena(be, static_cast<size_t>(n_pages) * cpu::kLatentPageTokens * record);
  std::vector<int32_t> sel_host(static_cast<size_t>(k));
  be.download(sel_host.data(), sel.data(), sel_host.size() * sizeof(int32_t));
  std::vector<int64_t> sel_pos(sel_host.begin(), sel_host.end());
  const Buffer<int64_t> d_sel_pos = upload(be, sel_pos);
  const Buffer<float> c_kv = upload(be, random_values(rng, static_cast<size_t>(k * kv_lora), 1.0f));
  const Buffer<float> k_pe = upload(be, random_values(rng, static_cast<size_t>(k * rope), 1.0f));
  be.latent_write(latent_arena.data(), d_pages.data(), fmt, kv_lora, rope, k, d_sel_pos.data(), c_kv.data(),
                  k_pe.data());
  const Buffer<float> q_abs = upload(be, random_values(rng, static_cast<size_t>(heads * kv_lora), 0.05f));
  const Buffer<float> q_pe = upload(be, random_values(rng, static_cast<size_t>(heads * rope), 0.05f));
  const Buffer<int32_t> n_sel = upload(be, std::vector<int32_t>{static_cast<int32_t>(k)});
  Buffer<float> o_lat(be, static_cast<size_t>(heads * kv_lora));
  const cpu::LatentCacheView latent_view{latent_arena.data(), d_pages.data(), fmt, kv_lora, rope, record};
  const float softmax_scale = static_cast<float>(cfg.softmax_scale());
  out.attention.seconds = seconds_per_call(be, [&] {
    be.sparse_mla_decode(q_abs.data(), q_pe.data(), heads, latent_view, 0, 1, sel.data(), k, n_sel.data(), k,
                         softmax_scale, o_lat.data());
  });
  out.attention.flops = 2.0 * double(heads) * double(k) * double(2 * kv_lora + rope);
  out.attention.bytes = double(k) * double(record);
  return out;
}

}  // namespace dsa::cli
