#!/usr/bin/env bash
# The first command of the README: installs what the build needs, builds dsagent, and runs the agent
# on the default model, the trained demo model in examples/demo-model: a calculator task, a lookup in
# its offline corpus, a file search with the shell, and a batch over its held-out tasks with the
# accuracy table. Rerunning reuses the build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" >/dev/null
dsagent="$build/cli/dsagent"
model="$root/examples/demo-model"
unset DSAGENT_MODEL

if [ ! -f "$model/config.json" ]; then
  echo "demo: no weights in $model (examples/demo-train/train.sh makes them)" >&2
  exit 1
fi

echo '== dsagent run "What is 4817 * 23?"   (the default model thinks, calls the calculator, answers)'
"$dsagent" run "What is 4817 * 23?"
echo
question="$(sed -n 's/.*"type": "lookup", "question": "\([^"]*\)".*/\1/p' "$model/eval/heldout.jsonl" | head -n 1)"
echo "== dsagent run \"$question\"   (search and open in the model's offline corpus)"
"$dsagent" run "$question"
echo
question="$(sed -n 's/.*"type": "shell", "question": "\([^"]*\)".*/\1/p' "$model/eval/heldout.jsonl" | head -n 1)"
echo "== dsagent run --workdir examples/demo-model/workspace \"$question\"   (grep and cat with the shell tool)"
"$dsagent" run --workdir "$model/workspace" "$question"
echo
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "== dsagent batch examples/demo-model/eval/heldout.jsonl   (held-out tasks, graded by exact match)"
"$dsagent" batch "$model/eval/heldout.jsonl" --out "$out" --workdir "$model/workspace" --grade exact --workers 2
