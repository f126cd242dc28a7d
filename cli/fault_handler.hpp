// A memory-mapped checkpoint shard cut short by another process while dsagent reads it (a
// rewrite, a full disk) faults with SIGBUS on the next read of the missing pages. The handler
// installed here ends the process with one line saying so, instead of a bare "Bus error".
#pragma once

namespace dsa::cli {

void install_fault_handler();

}  // namespace dsa::cli
