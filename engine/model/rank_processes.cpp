// Ranks in separate processes (see rank_processes.hpp): the launch, the messages rank 0 sends
// before each call, and the workers' loop.
#include "engine/model/rank_processes.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <mutex>
#include <thread>

#include "engine/model/forward_checks.hpp"
#include "kernels/cpu/parallel.hpp"
#ifdef DSA_WITH_CUDA
#include "engine/backend/backend_cuda.hpp"
#endif
#ifdef DSA_WITH_NCCL
#include "engine/dist/nccl_comm.hpp"
#endif

extern char** environ;

namespace dsa {
namespace {

// What rank 0 sends before each call, in one message: the op, then its fields.
enum class Op : uint8_t { make_cache = 1, drop_cache, forward, decode_batch, copy_prefix, stop };

class Writer {
 public:
  explicit Writer(Op op) { u8(static_cast<uint8_t>(op)); }
  void u8(uint8_t v) { bytes_.push_back(v); }
  void i64(int64_t v) { raw(&v, sizeof(v)); }
  void raw(const void* p, size_t n) {
    const size_t at = bytes_.size();
    bytes_.resize(at + n);
    if (n) std::memcpy(bytes_.data() + at, p, n);
  }
  void str(const std::string& s) {
    i64(int64_t(s.size()));
    raw(s.data(), s.size());
  }
  void ids(std::span<const int32_t> v) {
    i64(int64_t(v.size()));
    raw(v.data(), v.size() * sizeof(int32_t));
  }
  void seq(const Sequence& s) {
    i64(s.n_cached);
    ids(s.pages);
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Reads what Writer wrote; a short message is a broken invariant (both ends are this program).
class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& b) : b_(b) {}
  uint8_t u8() { return *take(1); }
  int64_t i64() {
    int64_t v;
    std::memcpy(&v, take(sizeof(v)), sizeof(v));
    return v;
  }
  std::string str() {
    const auto n = size_t(i64());
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  std::vector<int32_t> ids() {
    const auto n = size_t(i64());
    std::vector<int32_t> v(n);
    if (n) std::memcpy(v.data(), take(n * sizeof(int32_t)), n * sizeof(int32_t));
    return v;
  }
  Sequence seq() {
    Sequence s;
    s.n_cached = i64();
    s.pages = ids();
    return s;
  }

 private:
  const uint8_t* take(size_t n) {
    DSA_CHECK(n <= b_.size() - pos_, "a rank message ended early");
    const uint8_t* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
};

[[noreturn]] void group_lost(const std::string& why) {
  std::fflush(stdout);  // what was printed so far stays printed
  std::fprintf(stderr, "dsagent: %s; the rank group cannot go on\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

std::string exit_text(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  if (WEXITSTATUS(status) == 127) return "could not start its program (exit status 127)";
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

// A worker's reply once it has loaded its share: ok, or its error.
std::vector<uint8_t> status_message(const Result<void>& r) {
  const std::string text = r ? std::string() : r.error().message;
  std::vector<uint8_t> m(1 + text.size());
  m[0] = r ? 0 : 1;
  std::memcpy(m.data() + 1, text.data(), text.size());
  return m;
}

}  // namespace

// The workers' processes. Once watch(group) is called, a thread checks every 100 ms that they run
// and that every rank's connection is open (ranks started by hand on other machines have no
// process here): one that ends stops this process (see rank_processes.hpp) until stop_watch(). The
// destructor reaps the processes (SIGKILL for one still running after 10 s).
class WorkerProcesses {
 public:
  explicit WorkerProcesses(std::vector<pid_t> pids) : pids_(std::move(pids)) {}
  ~WorkerProcesses() {
    stop_watch();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (pid_t pid : pids_) {
      int status = 0;
      while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid, SIGKILL);
          ::waitpid(pid, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  // The first worker that has ended (now reaped): its rank and how, or nothing. Called before the
  // watch, then only by the watcher.
  std::optional<std::string> ended() {
    for (size_t i = 0; i < pids_.size(); ++i) {
      int status = 0;
      if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i])
        return "rank " + std::to_string(i + 1) + " (process " + std::to_string(pids_[i]) + ") " + exit_text(status);
    }
    return std::nullopt;
  }
  void watch(const SocketGroup& group) {
    if (watcher_.joinable()) return;
    watcher_ = std::thread([this, &group] {
      while (!stopping_.load()) {
        if (auto gone = ended()) group_lost(*gone);
        if (const int r = group.closed_peer(); r > 0) group_lost("rank " + std::to_string(r) + " closed its connection");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  void stop_watch() {
    stopping_.store(true);
    if (watcher_.joinable()) watcher_.join();
  }
  // Ends the workers now (a failed start).
  void kill_all() {
    stop_watch();
    for (pid_t pid : pids_) ::kill(pid, SIGTERM);
  }

 private:
  std::vector<pid_t> pids_;
  std::thread watcher_;
  std::atomic<bool> stopping_{false};
};

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
  channel_->to_workers(w);
  return local_->forward_decode_batch(cache, seqs, tokens, logits, trace);
}

Result<void> serve_rank(SocketGroup& group, ForwardPass& model) {
  std::map<int64_t, std::unique_ptr<KvCache>> pools;
  std::vector<float> logits;
  const auto vocab = size_t(model.config().vocab_size);
  const auto report = [&](const Result<void>& r) {
    // The ranks check the same inputs before any collective, so rank 0 fails a bad call the same
    // way. A failure of this rank alone leaves the ranks out of step: end, so that rank 0 stops too.
    if (r) return;
    std::fprintf(stderr, "dsagent: rank %d: %s\n", group.rank(), r.error().message.c_str());
    std::fflush(stderr);
    std::_Exit(1);
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
        logits.resize(vocab);
        report(model.forward(pool, seq, tokens, logits.data()));
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
        logits.resize(vocab * tokens.size());
        report(model.forward_decode_batch(pool, rows, tokens, logits.data()));
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

// The launch message: the model directory and the options every rank loads with, and the NCCL id
// for GPU ranks.
namespace {

std::vector<uint8_t> launch_message(const std::filesystem::path& dir, const OpenOptions& o, const std::string& nccl_id) {
  Writer w(Op::make_cache);  // the op byte is unused here
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(dir, ec);
  w.str((ec ? dir : absolute).string());
  w.u8(static_cast<uint8_t>(o.device));
  w.u8(static_cast<uint8_t>(o.attention));
  w.i64(o.context);
  w.i64(o.sequences);
  w.str(nccl_id);
  return w.bytes();
}


std::string token_text(uint64_t token) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(token));
  return text;
}

// Whether this rank's GPU exists, checked before NCCL starts (NCCL would wait for a rank that
// cannot join).
Result<void> check_rank_device(Device device, int gpu, int rank) {
  if (device == Device::cpu) return {};
#ifdef DSA_WITH_CUDA
  const int index = gpu >= 0 ? gpu : rank, visible = cuda_device_count();
  if (index >= visible)
    return make_error("GPU " + std::to_string(index) + " is not there (" + std::to_string(visible) + " visible)");
  return {};
#else
  (void)gpu;
  (void)rank;
  return make_error("--device cuda: this dsagent was built without CUDA");
#endif
}

// The Comm of one rank: over the sockets on the CPU, NCCL (its id from rank 0) on GPUs.
Result<std::unique_ptr<Comm>> rank_comm(SocketGroup& group, Device device, const std::string& nccl_id, int gpu) {
  if (device == Device::cpu) return make_socket_comm(group);
#ifdef DSA_WITH_NCCL
  NcclId id;
  DSA_CHECK(nccl_id.size() == id.bytes.size(), "an NCCL id travels with GPU ranks");
  std::memcpy(id.bytes.data(), nccl_id.data(), id.bytes.size());
  return make_nccl_comm(id, group.rank(), group.size(), gpu >= 0 ? gpu : group.rank());
#else
  (void)nccl_id;
  (void)gpu;
  return make_error("GPU ranks in separate processes need a dsagent built with NCCL");
#endif
}

// Starts `program rank-worker --connect PATH --rank r --ranks n` for r = 1..local-1. CPU ranks share
// the cores: each worker gets DSA_THREADS = cores / local unless the environment sets it (rank 0
// likewise).
Result<std::vector<pid_t>> start_workers(const std::string& program, const SocketGroup& group, int local,
                                         Device device) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  if (device == Device::cpu && !std::getenv("DSA_THREADS")) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    env_strings.push_back("DSA_THREADS=" + std::to_string(std::max(1u, cores / unsigned(local))));
  }
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<pid_t> pids;
  const pid_t parent = ::getpid();
  for (int r = 1; r < local; ++r) {
    std::vector<std::string> args = {program, "rank-worker", "--connect", group.path(), "--token",
                                     token_text(group.token()), "--rank", std::to_string(r), "--ranks",
                                     std::to_string(group.size())};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      const std::string why = std::strerror(errno);
      for (pid_t p : pids) {
        ::kill(p, SIGTERM);
        ::waitpid(p, nullptr, 0);
      }
      return make_error("cannot start a rank process: " + why);
    }
    if (pid == 0) {
      // A worker ends with rank 0: strictly, with the thread that started it, which is the one that
      // opens the model (the main thread in dsagent).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      // Ctrl-C in a terminal reaches the whole process group: it is rank 0's to handle (chat stops
      // the turn), not a reason for a worker to end.
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      ::sigaction(SIGINT, &ignore, nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  return pids;
}

}  // namespace

Result<std::unique_ptr<ForwardPass>> open_rank_processes(const std::filesystem::path& dir, const OpenOptions& options) {
  const int n_local = options.local_ranks > 0 ? std::min(options.local_ranks, options.ranks) : options.ranks;
  if (n_local < options.ranks && options.rank_address.empty())
    return make_error("--local-ranks " + std::to_string(n_local) + ": ranks on other machines need --rank-address HOST:PORT");
  DSA_TRY(group, SocketGroup::listen(options.ranks, options.rank_address));
  std::string program = options.rank_program;
  if (program.empty()) {
    std::error_code ec;
    program = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) program = "/proc/self/exe";
  }
  DSA_TRY(pids, start_workers(program, *group, n_local, options.device));
  if (options.device == Device::cpu && !std::getenv("DSA_THREADS")) {
    // This process is one of the CPU ranks sharing the cores too.
    cpu::set_num_threads(int(std::max(1u, std::max(1u, std::thread::hardware_concurrency()) / unsigned(n_local))));
  }
  if (n_local < options.ranks) {
    std::fprintf(stderr,
                 "dsagent: waiting for ranks %d..%d at %s: on their machines run `dsagent rank-worker --connect %s "
                 "--token %s --rank R --ranks %d --gpu G` (the model at %s there too)\n",
                 n_local, options.ranks - 1, group->path().c_str(), group->path().c_str(),
                 token_text(group->token()).c_str(), options.ranks, std::filesystem::absolute(dir).string().c_str());
  }
  auto workers = std::make_unique<WorkerProcesses>(std::move(pids));
  const auto fail = [&](const Error& e) -> Error {
    workers->kill_all();
    return e;
  };
  const auto alive = [&]() -> Result<void> {
    if (auto ended = workers->ended()) return make_error(*ended + " before joining");
    return {};
  };
  // Ranks started by hand on other machines get half an hour to join.
  if (auto r = group->accept_all(n_local < options.ranks ? 1800.0 : 120.0, alive); !r) return fail(r.error());

  std::string nccl_id;
#ifdef DSA_WITH_NCCL
  if (options.device == Device::cuda) {
    auto id = nccl_unique_id();
    if (!id) return fail(id.error());
    nccl_id.assign(id->bytes.data(), id->bytes.size());
  }
#endif
  const std::vector<uint8_t> launch = launch_message(dir, options, nccl_id);
  for (int r = 1; r < group->size(); ++r) {
    if (auto sent = group->send_message(r, launch); !sent) return fail(sent.error());
  }
  // Every rank's device first: NCCL would wait forever for a rank that cannot join.
  const auto statuses = [&](const char* stage) -> Result<void> {
    for (int r = 1; r < group->size(); ++r) {
      auto status = group->recv_message(r);
      if (!status) return status.error();
      if (status->empty() || (*status)[0] != 0) {
        return make_error("rank " + std::to_string(r) + " (" + stage + "): " +
                          std::string(status->begin() + (status->empty() ? 0 : 1), status->end()));
      }
    }
    return {};
  };
  if (auto r = check_rank_device(options.device, options.gpu, 0); !r) return fail(r.error());
  if (auto r = statuses("device"); !r) return fail(r.error());
  workers->watch(*group);  // from here a worker that ends stops this process (NCCL would wait for it)
  auto comm = rank_comm(*group, options.device, nccl_id, options.gpu);
  if (!comm) return fail(comm.error());
  auto local = load_rank(dir, options, comm->get());
  if (!local) return fail(local.error());
  if (auto r = statuses("load"); !r) return fail(r.error());
  return std::unique_ptr<ForwardPass>(std::make_unique<ProcessRanks>(std::move(group), std::move(*comm),
                                                                     std::move(*local), std::move(workers)));
}

Result<void> run_rank_worker(const std::string& address, uint64_t token, int rank, int n_ranks, int gpu) {
  // A rank started by hand may come up before rank 0 listens.
  DSA_TRY(group, SocketGroup::connect(address, token, rank, n_ranks, 60.0));
  DSA_TRY(launch, group->recv_message(0));
  Reader in(launch);
  (void)in.u8();
  const std::filesystem::path dir = in.str();
  OpenOptions options;
  options.device = static_cast<Device>(in.u8());
  options.attention = static_cast<AttentionMode>(in.u8());
  options.context = in.i64();
  options.sequences = in.i64();
  const std::string nccl_id = in.str();
  options.ranks = n_ranks;
  options.gpu = gpu;

  const Result<void> device = check_rank_device(options.device, gpu, rank);
  if (auto sent = group->send_message(0, status_message(device)); !sent) return sent;
  if (!device) return device;  // rank 0 reports it and ends the group
  // Past this point rank 0 may be waiting in NCCL's set-up, not reading: a failure here ends this
  // process, which rank 0's watch notices.
  Result<std::unique_ptr<Comm>> comm = rank_comm(*group, options.device, nccl_id, gpu);
  if (!comm) return comm.error();
  Result<std::unique_ptr<ForwardPass>> model = load_rank(dir, options, comm->get());
  const Result<void> loaded = model ? Result<void>{} : Result<void>(model.error());
  if (auto sent = group->send_message(0, status_message(loaded)); !sent) return sent;
  if (!loaded) {
    // Rank 0 reports the error; wait for it to close the group, so the exit does not race its read.
    uint8_t byte;
    (void)group->recv(0, &byte, 1);
    return loaded;
  }
  return serve_rank(*group, **model);
}

}  // namespace dsa
