// The optional bubblewrap sandbox for `shell`: the command sees the whole file system read-only,
// the work dir writable, a private /tmp, and no network (--unshare-net). It needs the `bwrap`
// program (Debian's bubblewrap package) and a kernel that lets it create namespaces; when either is
// missing the shell tool reports that, it never falls back to running unsandboxed.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "engine/api/result.hpp"

namespace dsa {

// Whether bwrap can run here (checked once by running a trivial sandboxed command; cached).
// error: "sandbox: cannot run 'bwrap': No such file or directory (install the bubblewrap package)" or
// "sandbox: bwrap cannot create namespaces here: <its message>".
Result<void> sandbox_available();

// argv wrapped to run inside the sandbox with workdir writable and the current directory.
std::vector<std::string> sandboxed_argv(const std::filesystem::path& workdir, const std::vector<std::string>& argv);

}  // namespace dsa
