// Ranks in separate processes, at run time (see rank_processes.hpp): the message rank 0 sends
// before each call, and the workers' loop that replays them. The start-up is in rank_launch.cpp.
#include "engine/model/rank_processes.hpp"

#include <cstdio>
#include <map>
#include <mutex>

#include "engine/model/forward_checks.hpp"
#include "engine/model/rank_messages.hpp"
#include "engine/model/worker_processes.hpp"

namespace dsa {

using ranks::group_lost;
using ranks::Op;
using ranks::Reader;
using ranks::Writer;

struct ProcessRanks::Channel {
  std::mutex mu;
  std::unique_ptr<SocketGroup> group;
  bool open = true;
  // The message to every worker (mu held); a worker that cannot take it stops the group.
  void to_workers(const Writer& w) {
    for (int r = 1; r < group->size(); ++r) {
      if (auto sent = group->send_message(r, w.bytes()); !sent) group_lost(sent.error().message);
    }
  }
};

namespace {

// Rank 0's pool tells the workers' copies of it about prefix copies, and drops them with it.
class PoolReplica final : public KvCache::Replica {
 public:
  PoolReplica(std::shared_ptr<ProcessRanks::Channel> channel, int64_t id) : channel_(std::move(channel)), id_(id) {}
  ~PoolReplica() override {
    std::lock_guard lock(channel_->mu);
    if (!channel_->open) return;
    Writer w(Op::drop_cache);
    w.i64(id_);
    channel_->to_workers(w);
  }
  void copy_prefix(const Sequence& src, const Sequence& dst, int64_t n_tokens) override {
    std::lock_guard lock(channel_->mu);
    if (!channel_->open) return;  // the group has ended: the pool is rank 0's alone
    Writer w(Op::copy_prefix);
    w.i64(id_);
    w.i64(n_tokens);
    w.seq(src);
    w.ids(dst.pages);
    channel_->to_workers(w);
  }
  int64_t id() const { return id_; }

 private:
  std::shared_ptr<ProcessRanks::Channel> channel_;
  int64_t id_;
};

int64_t pool_id(const KvCache& cache) {
  const auto* replica = dynamic_cast<const PoolReplica*>(cache.replica());
  DSA_CHECK(replica, "the cache comes from this group's make_cache");
  return replica->id();
}

}  // namespace

ProcessRanks::ProcessRanks(std::unique_ptr<SocketGroup> group, std::unique_ptr<Comm> comm,
                           std::unique_ptr<ForwardPass> local, std::unique_ptr<WorkerProcesses> workers)
    : channel_(std::make_shared<Channel>()),
      comm_(std::move(comm)),
      local_(std::move(local)),
      workers_(std::move(workers)) {
  channel_->group = std::move(group);
}

ProcessRanks::ProcessRanks(std::unique_ptr<SocketGroup> group, std::unique_ptr<Comm> comm,
                           std::unique_ptr<ForwardPass> local)
    : ProcessRanks(std::move(group), std::move(comm), std::move(local), nullptr) {}

ProcessRanks::~ProcessRanks() {
  if (workers_) workers_->stop_watch();  // the workers end now, on purpose
  {
    std::lock_guard lock(channel_->mu);
    for (int r = 1; r < channel_->group->size(); ++r) (void)channel_->group->send_message(r, Writer(Op::stop).bytes());
    channel_->open = false;  // pools that outlive the group no longer send
  }
  workers_.reset();  // reaps them
}

KvCache ProcessRanks::make_cache(cpu::LatentFormat format, int64_t n_pages) {
  KvCache cache = local_->make_cache(format, n_pages);
  int64_t id = 0;
  {
    std::lock_guard lock(channel_->mu);
    id = next_cache_++;
    Writer w(Op::make_cache);
    w.i64(id);
    w.u8(static_cast<uint8_t>(format));
    w.i64(n_pages);
    channel_->to_workers(w);
  }
  cache.set_replica(std::make_unique<PoolReplica>(channel_, id));
  return cache;
}

Result<void> ProcessRanks::forward(KvCache& cache, Sequence& seq, std::span<const int32_t> tokens, float* logits,
                                   ForwardTrace* trace) {
  DSA_CHECK(!trace || !trace->forced_topk, "forced selections are not sent to other processes");
  if (tokens.empty()) return make_error("forward: no tokens");
  if (auto r = check_tokens(tokens, config().vocab_size); !r) return r.error();
  const int64_t end = seq.n_cached + static_cast<int64_t>(tokens.size());
  if (auto r = check_position(end, config().max_position_embeddings); !r) return r.error();
  if (auto r = cache.reserve(seq, end); !r) return r.error();
  std::lock_guard lock(channel_->mu);
  Writer w(Op::forward);
  w.i64(pool_id(cache));
  w.ids(tokens);
  w.seq(seq);
  w.u8(trace ? 1 : 0);  // a traced call is not recorded: the ranks run it alike
  channel_->to_workers(w);
  return local_->forward(cache, seq, tokens, logits, trace);
}

Result<void> ProcessRanks::forward_decode_batch(KvCache& cache, std::span<Sequence*> seqs,
                                                std::span<const int32_t> tokens, float* logits, ForwardTrace* trace) {
  DSA_CHECK(!trace || !trace->forced_topk, "forced selections are not sent to other processes");
  if (auto r = check_decode_batch(seqs, tokens, config()); !r) return r.error();
  for (Sequence* s : seqs) {
    if (auto r = cache.reserve(*s, s->n_cached + 1); !r) return r.error();
  }
  std::lock_guard lock(channel_->mu);
  Writer w(Op::decode_batch);
  w.i64(pool_id(cache));
  w.ids(tokens);
  for (const Sequence* s : seqs) w.seq(*s);
  w.u8(trace ? 1 : 0);
  channel_->to_workers(w);
  return local_->forward_decode_batch(cache, seqs, tokens, logits, trace);
}

Result<void> serve_rank(SocketGroup& group, ForwardPass& model) {
  std::map<int64_t, std::unique_ptr<KvCache>> pools;
  std::vector<float> logits;
  const auto vocab = size_t(model.config().vocab_size);
  const auto report = [&](const Result<void>& r) {
    // A forward's errors are every rank's (ForwardPass): rank 0 returns the same one to its caller,
    // and the ranks go on in step.
    if (r) return;
    std::fprintf(stderr, "dsagent: rank %d: %s\n", group.rank(), r.error().message.c_str());
    std::fflush(stderr);
  };
  for (;;) {
    auto message = group.recv_message(0);
    if (!message) return make_error("rank 0 went away (" + message.error().message + ")");
    Reader in(*message);
    switch (static_cast<Op>(in.u8())) {
      case Op::make_cache: {
        const int64_t id = in.i64();
        const auto format = static_cast<cpu::LatentFormat>(in.u8());
        const int64_t n_pages = in.i64();
        pools[id] = std::make_unique<KvCache>(model.make_cache(format, n_pages));
        break;
      }
      case Op::drop_cache:
        pools.erase(in.i64());
        break;
      case Op::forward: {
        KvCache& pool = *pools.at(in.i64());
        const std::vector<int32_t> tokens = in.ids();
        Sequence seq = in.seq();
        ForwardTrace trace;
        const bool traced = in.u8() != 0;
        logits.resize(vocab);
        report(model.forward(pool, seq, tokens, logits.data(), traced ? &trace : nullptr));
        break;
      }
      case Op::decode_batch: {
        KvCache& pool = *pools.at(in.i64());
        const std::vector<int32_t> tokens = in.ids();
        std::vector<Sequence> seqs(tokens.size());
        std::vector<Sequence*> rows;
        for (Sequence& s : seqs) {
          s = in.seq();
          rows.push_back(&s);
        }
        ForwardTrace trace;
        const bool traced = in.u8() != 0;
        logits.resize(vocab * tokens.size());
        report(model.forward_decode_batch(pool, rows, tokens, logits.data(), traced ? &trace : nullptr));
        break;
      }
      case Op::copy_prefix: {
        KvCache& pool = *pools.at(in.i64());
        const int64_t n_tokens = in.i64();
        const Sequence src = in.seq();
        Sequence dst;
        dst.pages = in.ids();
        pool.copy_prefix(src, dst, n_tokens);
        break;
      }
      case Op::stop:
        return {};
      default:
        DSA_CHECK(false, "unknown rank message");
    }
  }
}

}  // namespace dsa
