// The local engine's device and rank flags, shared by generate, run, chat and batch:
// --device cpu|cuda, --gpus N (cuda), --ranks N or --tp N (either device; --ep N, if given, must be
// the same: heads and experts are split over the same ranks), --launch threads|processes, and for
// ranks on several machines --rank-address HOST:PORT and --local-ranks N.
#pragma once
#include <string>

#include <CLI/CLI.hpp>

#include "engine/api/result.hpp"
#include "engine/model/open_model.hpp"

namespace dsa::cli {

struct EngineFlags {
  std::string device = "cpu";
  int gpus = 0;                    // --gpus N: cuda only; 0 = not given
  int ranks = 0;                   // --ranks N (or --tp N): tensor- and expert-parallel ranks; 0 = not given
  int ep = 0;                      // --ep N: must equal the ranks (experts split over the same ones)
  std::string launch = "threads";  // one thread or one process per rank
  std::string rank_address;        // --rank-address HOST:PORT: rank 0 waits there (processes)
  int local_ranks = 0;             // --local-ranks N: ranks this machine starts (0: all)
};

// Adds the flags to cmd, in the help group `group`.
void add_engine_flags(CLI::App& cmd, EngineFlags& flags, const std::string& group = "Options");

// The device and rank fields of OpenOptions; an error for --gpus without cuda, or --gpus and
// --ranks that disagree.
Result<OpenOptions> engine_options(const EngineFlags& flags);

}  // namespace dsa::cli
