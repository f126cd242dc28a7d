#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs the whole CPU test suite with CTest.
# GPU tests (label `gpu`) are built when CUDA is found and run only with --gpu.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
labels=(-LE gpu)
if [ "${1:-}" = "--gpu" ]; then labels=(); fi

"$root/scripts/setup.sh"
# The MCP client tests talk to real MCP servers from PyPI; without them those cases are skipped.
if [ -f "$root/scripts/requirements-mcp.txt" ]; then
  "$root/scripts/python-env.sh" mcp >/dev/null || echo "test: could not set up the MCP test servers; MCP cases will be skipped" >&2
fi
"$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure "${labels[@]}" -j "${JOBS:-$(nproc)}"
