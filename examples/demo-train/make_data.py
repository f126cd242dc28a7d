"""Builds the demo model's files and training data.

  python make_data.py --dsagent build/cli/dsagent --out OUT_DIR

Writes into examples/demo-model/ the offline corpus (corpus.jsonl), the shared workspace the
held-out shell tasks use (workspace/), and the held-out tasks (eval/heldout.jsonl); into OUT_DIR
the training conversations (conversations.jsonl, recorded by running every training task through
`dsagent run` against the scripted teacher in oracle.py) and their rendered prompts
(texts.jsonl: the exact V3.2 encoding from `dsagent render`, with the character spans the model
generates).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import oracle
import tasks

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "..", "demo-model")
TOOLS = "calculator,browse,shell"
THINK, EOS = "<think>", "<｜end▁of▁sentence｜>"


def generated_spans(text, start):
    """Character spans the model writes: after each <think> that closes a prompt, through the EOS."""
    spans, i = [], text.find(THINK, start)
    while i >= 0:
        a = i + len(THINK)
        b = text.find(EOS, a)
        if b < 0:
            raise ValueError("assistant turn without end of sentence")
        spans.append([a, b + len(EOS)])
        i = text.find(THINK, b)
    return spans


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsagent", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--limit", type=int, default=0, help="only the first N training tasks (for a quick check)")
    a = ap.parse_args()
    dsagent = os.path.abspath(a.dsagent)
    os.makedirs(a.out, exist_ok=True)

    ents, ws_files, train, held = tasks.make_all()
    if a.limit:
        train = train[: a.limit]
    tasks.write_corpus(os.path.join(MODEL_DIR, "corpus.jsonl"), ents)
    ws = os.path.join(MODEL_DIR, "workspace")
    shutil.rmtree(ws, ignore_errors=True)
    tasks.write_files(ws, ws_files)
    os.makedirs(os.path.join(MODEL_DIR, "eval"), exist_ok=True)
    with open(os.path.join(MODEL_DIR, "eval", "heldout.jsonl"), "w") as f:
        for t in held:
            f.write(json.dumps({"id": t["id"], "type": t["type"], "question": t["question"], "answer": t["answer"]}) + "\n")

    db = os.path.join(a.out, "corpus.db")
    subprocess.run([dsagent, "index", os.path.join(MODEL_DIR, "corpus.jsonl"), "--out", db], check=True,
                   capture_output=True)

    convs = {}
    teacher = oracle.Teacher(train, lambda task, conv: convs.__setitem__(task["id"], conv))
    srv = oracle.serve(teacher)
    url = f"http://127.0.0.1:{srv.server_address[1]}"

    def run(task):
        work = tempfile.mkdtemp(prefix="demo-task-")
        try:
            if task["type"] == "shell":
                tasks.write_files(work, task["files"])
            r = subprocess.run([dsagent, "run", "--api", url, "--api-model", "teacher", "--tools", TOOLS, "--corpus", db,
                                "--prompts-dir", os.path.join(MODEL_DIR, "prompts"), "--workdir", work,
                                "--thinking", "on", "--max-steps", "6", "--quiet", "--", task["question"]],
                               capture_output=True, text=True, timeout=120)
            return r.returncode, r.stderr[-300:]
        finally:
            shutil.rmtree(work, ignore_errors=True)

    failures = 0
    with ThreadPoolExecutor(a.workers) as pool:
        for n, (rc, err) in enumerate(pool.map(run, train)):
            if rc != 0:
                failures += 1
                if failures < 5:
                    print("run failed:", rc, err, file=sys.stderr)
            if n % 500 == 0:
                print(f"{n}/{len(train)} tasks", file=sys.stderr)
    srv.shutdown()

    kept = [t for t in train if convs.get(t["id"])]
    print(f"{len(kept)} of {len(train)} trajectories kept ({failures} runs failed)", file=sys.stderr)
    with open(os.path.join(a.out, "tools.json"), "w") as f:  # the tool definitions the agent sent
        json.dump(convs[kept[0]["id"]]["tools"], f)
    with open(os.path.join(a.out, "conversations.jsonl"), "w") as f:
        for t in kept:
            f.write(json.dumps({"id": t["id"], "type": t["type"], **convs[t["id"]]}) + "\n")

    def render(t):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as tmp:
            json.dump(convs[t["id"]], tmp)
        try:
            r = subprocess.run([dsagent, "render", "--messages", tmp.name, "--thinking", "on"], capture_output=True,
                               text=True, check=True)
        finally:
            os.unlink(tmp.name)
        text = r.stdout
        user = text.index("<｜User｜>")
        return {"id": t["id"], "type": t["type"], "text": text, "prefix_chars": user,
                "spans": generated_spans(text, user)}

    with ThreadPoolExecutor(a.workers) as pool:
        rendered = list(pool.map(render, kept))
    prefixes = {r["text"][: r["prefix_chars"]] for r in rendered}
    if len(prefixes) != 1:
        sys.exit(f"the rendered prefix (system prompt and tools) differs between conversations: {len(prefixes)} variants")
    with open(os.path.join(a.out, "texts.jsonl"), "w") as f:
        for r in rendered:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"prefix {len(next(iter(prefixes)))} chars; {sum(len(r['text']) for r in rendered)} chars in all",
          file=sys.stderr)


if __name__ == "__main__":
    main()
