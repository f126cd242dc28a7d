"""Held-out accuracy of a demo-model checkpoint through the C++ engine, per kind of task.

  python evaluate.py --dsagent build/cli/dsagent [--model DIR] [--attention dense] [--threshold 0.8]

Runs `dsagent batch` over examples/demo-model/eval/heldout.jsonl (exact-match grading) with the
given model directory (default: dsagent's default model), which needs the demo model's tokenizer and
dsagent.json beside its weights. With --threshold it exits non-zero when fewer than that share of
the tasks, or fewer than half of any kind, are answered right. Standard library only.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "demo-model")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsagent", required=True)
    ap.add_argument("--model", default="", help="model directory (default: dsagent's default model)")
    ap.add_argument("--attention", default="sparse")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=None)
    a = ap.parse_args()
    tasks = [json.loads(l) for l in open(os.path.join(DEMO, "eval", "heldout.jsonl"))]
    with tempfile.TemporaryDirectory() as out:
        t0 = time.time()
        cmd = [a.dsagent, "batch", os.path.join(DEMO, "eval", "heldout.jsonl"), "--out", out + "/b",
               "--attention", a.attention, "--grade", "exact", "--workdir", os.path.join(DEMO, "workspace"),
               "--workers", str(a.workers)]
        r = subprocess.run(cmd + (["--model", a.model] if a.model else []), capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(r.stderr[-2000:])
        results = {x["id"]: x for x in map(json.loads, open(out + "/b/results.jsonl"))}
        summary = json.load(open(out + "/b/summary.json"))
    kinds = collections.defaultdict(lambda: [0, 0])
    for t in tasks:
        r = results.get(t["id"], {})
        ok = r.get("correct") is True
        kinds[t["type"]][0] += ok
        kinds[t["type"]][1] += 1
        if not ok:
            print(f"  wrong: {t['id']} {t['question']!r} expected {t['answer']!r}, "
                  f"got {r.get('exact_answer', r.get('status'))!r}")
    right = sum(v[0] for v in kinds.values())
    print(f"{a.model or 'default model'} ({a.attention}): "
          + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(kinds.items()))
          + f"; all {right}/{len(tasks)} = {right / len(tasks):.0%}; {time.time() - t0:.0f} s")
    print(json.dumps({k: summary.get(k) for k in ("accuracy", "calibration_error", "avg_steps", "avg_tool_calls")}))
    if a.threshold is not None and (right < a.threshold * len(tasks)
                                    or any(v[0] < 0.5 * v[1] for v in kinds.values())):
        sys.exit(f"held-out accuracy below the threshold ({a.threshold:.0%} overall, half of each kind)")


if __name__ == "__main__":
    main()
