#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs the whole CPU test suite with CTest.
# GPU tests (label `gpu`) are built when CUDA is found and run only with --gpu.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
labels=(-LE gpu)
if [ "${1:-}" = "--gpu" ]; then labels=(); fi

"$root/scripts/setup.sh"
"$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure "${labels[@]}" -j "${JOBS:-$(nproc)}"
