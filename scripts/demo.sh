#!/usr/bin/env bash
# The first command of the README: installs what the build needs, builds dsagent, and runs the
# engine on the default model. Until the trained demo model ships in examples/, the default model is
# a tiny random-weight checkpoint generated in the real DeepSeek-V3.2 layout (FP8 block-scaled
# weights, MLA, lightning indexer with top-k below the prompt length, MoE), so the text it prints
# is noise while every stage that produces it is the real one. Rerunning reuses the build and model.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
"$root/scripts/setup.sh"
"$root/scripts/build.sh" >/dev/null
dsagent="$build/cli/dsagent"
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
