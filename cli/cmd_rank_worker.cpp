// dsagent rank-worker: one rank of a local engine run with --launch processes. Rank 0 starts the
// ones of its machine (engine/model/rank_processes.hpp); ranks on other machines are started by
// hand, as rank 0's waiting message says. Hidden from the command list.
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "engine/model/rank_processes.hpp"

namespace dsa::cli {

void add_rank_worker_command(CLI::App& app, int& exit_code) {
  struct Args {
    std::string connect, token;
    int rank = 0;
    int ranks = 0;
    int gpu = -1;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("rank-worker", "one rank of a --launch processes engine");
  cmd->group("");  // hidden
  cmd->add_option("--connect", args->connect, "rank 0's address: its socket, or HOST:PORT")->required();
  cmd->add_option("--token", args->token, "rank 0's token (16 hex digits, as rank 0 prints it)")->required();
  cmd->add_option("--rank", args->rank, "this rank (1..N-1)")->required();
  cmd->add_option("--ranks", args->ranks, "ranks in the group")->required();
  cmd->add_option("--gpu", args->gpu, "with cuda: this rank's GPU (default: the one numbered as the rank)");
  cmd->callback([args, &exit_code] {
    uint64_t token = 0;
    const auto [end, ec] = std::from_chars(args->token.data(), args->token.data() + args->token.size(), token, 16);
    if (ec != std::errc() || end != args->token.data() + args->token.size()) {
      std::fprintf(stderr, "dsagent rank-worker: --token %s: expected 16 hex digits\n", args->token.c_str());
      exit_code = 1;
      return;
    }
    auto r = run_rank_worker(args->connect, token, args->rank, args->ranks, args->gpu);
    if (!r) {
      std::fprintf(stderr, "dsagent rank-worker %d: %s\n", args->rank, r.error().message.c_str());
      exit_code = 1;
    }
  });
}

}  // namespace dsa::cli
