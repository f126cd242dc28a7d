#!/usr/bin/env bash
# End to end on the embedded demo model (examples/demo-model): real weights through the real engine
# (sparse attention), chat encoding, DSML parser and tools. Passes when
#   - `dsagent run "What is 4817 * 23?"`, with no other flag, answers 110791 (and word for word the
#     same with the engine over two rank processes), and
#   - `dsagent batch` answers at least 80% of the held-out tasks right (DEMO_THRESHOLD overrides),
#     and at least half of each kind (calculator, corpus lookup, shell).
# Usage: demo_model.sh DSAGENT SOURCE_DIR
set -euo pipefail
dsagent="$1"
root="$2"
threshold="${DEMO_THRESHOLD:-0.8}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cd "$out"
unset DSAGENT_MODEL

answer="$("$dsagent" run -q "What is 4817 * 23?")"
if ! grep -q "Exact Answer: 110791" <<<"$answer"; then
  echo "demo model: 'What is 4817 * 23?' was answered: $answer" >&2
  exit 1
fi
echo "run: What is 4817 * 23? -> $(grep 'Exact Answer' <<<"$answer")"

# The same run with the engine split over two CPU ranks in two processes (--launch processes):
# the same answer, word for word.
split="$("$dsagent" run -q --ranks 2 --launch processes "What is 4817 * 23?")"
if [[ "$split" != "$answer" ]]; then
  echo "demo model over two rank processes answered differently: $split" >&2
  exit 1
fi
echo "run --ranks 2 --launch processes: the same answer"

python3 "$root/examples/demo-train/evaluate.py" --dsagent "$dsagent" --threshold "$threshold"
