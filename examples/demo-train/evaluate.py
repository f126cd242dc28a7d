"""Held-out accuracy of a demo-model checkpoint through the C++ engine, per kind of task.

  python evaluate.py --dsagent build/cli/dsagent --model examples/demo-model [--attention dense]

Runs `dsagent batch` over examples/demo-model/eval/heldout.jsonl (exact-match grading) with the
given model directory, which needs the demo model's tokenizer and dsagent.json beside its weights.
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
    ap.add_argument("--model", default=DEMO)
    ap.add_argument("--attention", default="sparse")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    tasks = [json.loads(l) for l in open(os.path.join(DEMO, "eval", "heldout.jsonl"))]
    with tempfile.TemporaryDirectory() as out:
        t0 = time.time()
        r = subprocess.run([a.dsagent, "batch", os.path.join(DEMO, "eval", "heldout.jsonl"), "--out", out + "/b",
                            "--model", a.model, "--attention", a.attention, "--grade", "exact",
                            "--workdir", os.path.join(DEMO, "workspace"), "--workers", str(a.workers)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(r.stderr[-2000:])
        results = {x["id"]: x for x in map(json.loads, open(out + "/b/results.jsonl"))}
        summary = json.load(open(out + "/b/summary.json"))
    kinds = collections.defaultdict(lambda: [0, 0])
    for t in tasks:
        ok = results.get(t["id"], {}).get("correct") is True
        kinds[t["type"]][0] += ok
        kinds[t["type"]][1] += 1
    right = sum(v[0] for v in kinds.values())
    print(f"{a.model} ({a.attention}): " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(kinds.items()))
          + f"; all {right}/{len(tasks)} = {right / len(tasks):.0%}; {time.time() - t0:.0f} s")
    print(json.dumps({k: summary.get(k) for k in ("accuracy", "calibration_error", "avg_steps", "avg_tool_calls")}))


if __name__ == "__main__":
    main()
