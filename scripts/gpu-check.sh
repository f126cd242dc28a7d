#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds the GPU tests and runs, into one log, every GPU test case
# against its CPU reference, the engine on the GPU against the CPU backend, the decode-kernel
# timings, compute-sanitizer (memcheck on every case, racecheck on the DSA kernels),
# `dsagent bench --device cuda` on a bench-m checkpoint (made once in $build/bench-m; decode steps
# with and without CUDA graphs), and with two GPUs or more two GPU ranks as processes against the
# same on threads. Exit status: non-zero when a test or a sanitizer check fails.
# Usage: scripts/gpu-check.sh [LOG]   (build in BUILD_DIR, default build-gpu; CUDA_ARCH default 90a)
# With PREBUILT=1 nothing is built: the binaries already in BUILD_DIR are run (built elsewhere with
# the CUDA toolkit, for a GPU machine without the build's dependencies). STEPS picks some of the
# steps (default: all), e.g. STEPS="tests timings" for a short run: tests, dist, engine, timings,
# memcheck, racecheck, bench, ranks.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-gpu}"
log="${1:-$build/gpu-check.log}"
if [ "${PREBUILT:-0}" != 1 ]; then
  "$root/scripts/setup.sh" || exit 1
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSA_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" >/dev/null || exit 1
  cmake --build "$build" -j "${JOBS:-$(nproc)}" --target test_gpu_kernels test_gpu_dist test_gpu_backend dsagent || exit 1
fi
for binary in tests/test_gpu_kernels tests/test_gpu_dist tests/test_gpu_backend cli/dsagent; do
  [ -x "$build/$binary" ] || { echo "gpu-check: $build/$binary is missing" >&2; exit 1; }
done
export PATH="$PATH:/usr/local/cuda/bin"
# Binaries built in another checkout find this one's fixtures and dsagent.
export DSA_SOURCE_DIR="$root" DSA_BINARY="$build/cli/dsagent"
status=0
steps=" ${STEPS:-tests dist engine timings memcheck racecheck bench ranks} "
want() { [[ "$steps" == *" $1 "* ]]; }
step() {  # step NAME COMMAND...: runs it into the log, remembers a failure
  echo "== $1" | tee -a "$log"
  shift
  "$@" >>"$log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    status=1
    echo "   failed (exit $rc)" | tee -a "$log"
  fi
}
mkdir -p "$(dirname "$log")"
: >"$log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$log" 2>&1
kernels="$build/tests/test_gpu_kernels"
want tests && step "GPU tests (every op against the CPU reference)" "$kernels" --duration=true
want dist && step "NCCL" "$build/tests/test_gpu_dist"
want engine && step "engine on the GPU (CudaBackend, BackendModel)" "$build/tests/test_gpu_backend" --duration=true
want timings && step "decode-kernel timings" "$kernels" --no-skip -tc="*timings*"
want memcheck && step "memcheck" compute-sanitizer --tool memcheck --error-exitcode 1 "$kernels"
want racecheck && step "racecheck (DSA kernels)" compute-sanitizer --tool racecheck --error-exitcode 1 "$kernels" \
  -tc="*sparse_mla_decode*CPU reference*,*indexer_scores*,*top-k*"
want memcheck && step "memcheck (engine)" compute-sanitizer --tool memcheck --error-exitcode 1 \
  "$build/tests/test_gpu_backend"
dsagent="$build/cli/dsagent"
if want bench; then
  [ -f "$build/bench-m/config.json" ] || "$dsagent" make-model "$build/bench-m" --preset bench-m >>"$log" 2>&1
  step "bench --device cuda (bench-m)" "$dsagent" bench --model "$build/bench-m" --device cuda \
    --positions 1024,131072 --batch 1,16 --tokens 8 --prefill-tokens 2048
  step "bench --device cuda (bench-m), decode steps without CUDA graphs" "$dsagent" bench \
    --model "$build/bench-m" --device cuda --positions 1024 --batch 1,16 --tokens 8 --prefill-tokens 0 \
    --cuda-graphs off
fi
# With two GPUs or more: the engine over two GPU ranks as processes (NCCL ids from rank 0) prints
# what the same two ranks on threads print for a greedy generation (both sum in NCCL's order; one
# GPU may differ in the last bits).
if want ranks && [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
  tiny="$build/tiny-ranks"
  [ -f "$tiny/config.json" ] || "$dsagent" make-model "$tiny" --preset tiny --seed 5 >>"$log" 2>&1
  gen() { "$dsagent" generate --model "$tiny" --device cuda --prompt 'Hello world' --raw --max-tokens 16 --json "$@" 2>>"$log"; }
  same() {  # the two ranks as processes print what they print on threads
    [ "$(gen --gpus 2 --launch processes)" == "$(gen --gpus 2)" ]
  }
  step "2 GPU ranks: processes = threads" same
fi
echo "log: $log" >&2
exit $status
