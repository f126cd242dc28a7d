#!/usr/bin/env bash
# End to end on the embedded demo model (examples/demo-model): real weights through the real engine
# (sparse attention), chat encoding, DSML parser and tools. Passes when
#   - `dsagent run "What is 4817 * 23?"`, with no other flag, answers 110791, and
#   - `dsagent batch` answers at least 80% of the held-out tasks right (DEMO_THRESHOLD overrides),
#     and at least half of each kind (calculator, corpus lookup, shell).
# Usage: demo_model.sh DSAGENT SOURCE_DIR
set -euo pipefail
dsagent="$1"
root="$2"
threshold="${DEMO_THRESHOLD:-0.8}"
model="$root/examples/demo-model"
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

"$dsagent" batch "$model/eval/heldout.jsonl" --out "$out/batch" --workdir "$model/workspace" --grade exact \
  --workers 2 2>"$out/batch.log" || { cat "$out/batch.log" >&2; exit 1; }
python3 - "$out/batch/results.jsonl" "$model/eval/heldout.jsonl" "$threshold" <<'PY'
import collections, json, sys
results = {r["id"]: r for r in map(json.loads, open(sys.argv[1]))}
tasks = [json.loads(l) for l in open(sys.argv[2])]
threshold = float(sys.argv[3])
by_kind = collections.defaultdict(lambda: [0, 0])
for t in tasks:
    r = results.get(t["id"], {})
    ok = r.get("correct") is True
    by_kind[t["type"]][0] += ok
    by_kind[t["type"]][1] += 1
    if not ok:
        print(f"  wrong: {t['id']} {t['question']!r} expected {t['answer']!r}, got {r.get('exact_answer', r.get('status'))!r}")
right = sum(v[0] for v in by_kind.values())
print("held-out accuracy: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(by_kind.items()))
      + f"; all {right}/{len(tasks)} (threshold {threshold:.0%})")
if right < threshold * len(tasks) or any(v[0] < 0.5 * v[1] for v in by_kind.values()):
    sys.exit("demo model: held-out accuracy below the threshold")
PY
