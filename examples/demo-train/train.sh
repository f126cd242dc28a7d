#!/usr/bin/env bash
# Rebuilds the demo model (examples/demo-model) from nothing: the synthetic tasks and corpus, the
# teacher's trajectories recorded through `dsagent run`, the byte-level BPE tokenizer, the two-stage
# DSA training (dense warm-up of the indexer, then sparse training) and the FP8 export; then checks
# it end to end on the held-out tasks. MINUTES sets the time budget of stages A, B and C (stage P adds
# its 200 steps): 6 by default on a GPU, which is what made the shipped model (5,023 steps of 16 rows
# in 6.3 minutes on one H100), 48 on a CPU, where that buys about 200 steps and a model that copies
# values but is far from the shipped one (docs/demo-model.md). STEPS=A,B,C (and COPY_STEPS for the
# optional stage K) trains a fixed number of steps instead.
# Intermediate files go to OUT (default examples/demo-train/out, ignored by git).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/examples/demo-train"
out="${OUT:-$here/out}"
py="$("$root/scripts/python-env.sh" train)"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" >/dev/null
dsagent="${BUILD_DIR:-$root/build}/cli/dsagent"
cd "$here"
"$py" make_data.py --dsagent "$dsagent" --out "$out"
"$py" train_tokenizer.py --dsagent "$dsagent" --texts "$out/texts.jsonl" --out "$root/examples/demo-model"
minutes=48
if "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then minutes=6; fi
steps=()
if [ -n "${STEPS:-}" ]; then steps=(--steps "$STEPS"); fi
if [ -n "${COPY_STEPS:-}" ]; then steps+=(--copy-steps "$COPY_STEPS"); fi
"$py" train.py --data "$out" --tokenizer "$root/examples/demo-model/tokenizer.json" --out "$out/ckpt" \
  --minutes "${MINUTES:-$minutes}" "${steps[@]}"
"$py" export.py --dsagent "$dsagent" --ckpt "$out/ckpt/final.pt" --out "$root/examples/demo-model"
"$root/tests/e2e/demo_model.sh" "$dsagent" "$root"
