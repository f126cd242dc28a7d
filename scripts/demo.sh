#!/usr/bin/env bash
# The first command of the README: installs what the build needs, builds dsagent, and runs the agent
# on the default model. When the trained demo model is in examples/demo-model (config.json and
# weights), that is a calculator task, a lookup in its offline corpus, a file search with the shell,
# and a batch over its held-out tasks with the accuracy table. Until it is shipped, a tiny
# random-weight checkpoint in the real DeepSeek-V3.2 layout (FP8 block-scaled weights, MLA, lightning
# indexer with top-k below the prompt length, MoE) is generated and the engine runs on it: the text
# is noise, every stage that produces it is the real one. Rerunning reuses the build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" >/dev/null
dsagent="$build/cli/dsagent"
model="$root/examples/demo-model"
unset DSAGENT_MODEL

if [ ! -f "$model/config.json" ]; then
  model="$build/models/tiny"
  if [ ! -f "$model/config.json" ]; then
    "$dsagent" make-model "$model" --preset tiny --shards 3 --seed 1 --force
  fi
  echo "== dsagent inspect $model"
  "$dsagent" inspect "$model"
  echo
  echo "== dsagent generate (sparse attention, greedy)"
  "$dsagent" generate --model "$model" --temperature 0 --max-tokens 48 --thinking off \
    --prompt "Explain in one sentence what sparse attention buys a long-context agent."
  echo
  echo "== dsagent render: the DeepSeek-V3.2 prompt of a tool-using conversation"
  "$dsagent" render --messages "$root/examples/conversation.json" --thinking on | tail -n 14
  exit 0
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
