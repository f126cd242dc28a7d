// dsagent rank-worker: one rank of a local engine run with --launch processes. Started by rank 0
// (engine/model/rank_processes.hpp), not by hand; hidden from the command list.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "engine/model/rank_processes.hpp"

namespace dsa::cli {

void add_rank_worker_command(CLI::App& app, int& exit_code) {
  struct Args {
    std::string socket;
    int rank = 0;
    int ranks = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("rank-worker", "one rank of a --launch processes engine (started by rank 0)");
  cmd->group("");  // hidden
  cmd->add_option("--socket", args->socket, "rank 0's socket")->required();
  cmd->add_option("--rank", args->rank, "this rank (1..N-1)")->required();
  cmd->add_option("--ranks", args->ranks, "ranks in the group")->required();
  cmd->callback([args, &exit_code] {
    auto r = run_rank_worker(args->socket, args->rank, args->ranks);
    if (!r) {
      std::fprintf(stderr, "dsagent rank-worker %d: %s\n", args->rank, r.error().message.c_str());
      exit_code = 1;
    }
  });
}

}  // namespace dsa::cli
