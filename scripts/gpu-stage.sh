#!/usr/bin/env bash
# Copies the GPU test binaries and dsagent of a CUDA build into DIR (default build-gpu-bin, ignored)
# in the layout scripts/gpu-check.sh expects, so a GPU machine can run them without building:
#   scripts/gpu-stage.sh [DIR] [BUILD]    (BUILD default build-cuda)
#   then on the GPU machine, in a checkout of the same commit:
#   PREBUILT=1 BUILD_DIR=build-gpu-bin scripts/gpu-check.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/build-gpu-bin}"
build="${2:-$root/build-cuda}"
mkdir -p "$dir/tests" "$dir/cli"
for binary in tests/test_gpu_kernels tests/test_gpu_dist tests/test_gpu_backend cli/dsagent; do
  [ -x "$build/$binary" ] || { echo "gpu-stage: $build/$binary is missing (build it first)" >&2; exit 1; }
  cp "$build/$binary" "$dir/$binary"
done
du -sh "$dir"
