"""Cross-checks the C++ engine against the training code on a trained checkpoint: greedy
continuations of held-out prompts from PyTorch (model.py, fp32, exact weights) and from
`dsagent generate --raw` (FP8 weights and activations, the engine's kernels).

  python check_engine.py --dsagent build/cli/dsagent --ckpt OUT/ckpt/final.pt --model examples/demo-model --data OUT \
      [--attention sparse] [--n 6] [--tokens 40]

Prints, per prompt, how many leading tokens agree and the top-1 agreement rate at each position of
the engine's continuation (PyTorch scores the engine's tokens, so one early divergence does not hide
the rest).
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch
from tokenizers import Tokenizer

import model as M

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsagent", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="make_data.py's output (tools.json)")
    ap.add_argument("--attention", default="sparse")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=40)
    a = ap.parse_args()
    ck = torch.load(a.ckpt, map_location="cpu")
    net = M.Model(ck["config"])
    net.load_state_dict(ck["state"])
    net.eval()
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    tools = json.load(open(os.path.join(a.data, "tools.json")))
    tasks = [json.loads(l) for l in open(os.path.join(HERE, "..", "demo-model", "eval", "heldout.jsonl"))]
    system = open(os.path.join(HERE, "..", "demo-model", "prompts", "system_coding.txt")).read().rstrip("\n")
    picked = [t for i, t in enumerate(tasks) if i % max(1, len(tasks) // a.n) == 0][: a.n]
    total_same = total = 0
    for t in picked:
        conv = {"tools": tools, "messages": [{"role": "system", "content": system}, {"role": "user", "content": t["question"]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(conv, f)
        prompt = subprocess.run([a.dsagent, "render", "--messages", f.name, "--thinking", "on"], capture_output=True,
                                text=True, check=True).stdout
        os.unlink(f.name)
        r = subprocess.run([a.dsagent, "generate", "--raw", "--special", "--model", a.model, "--attention", a.attention,
                            "--temperature", "0", "--max-tokens", str(a.tokens), "--prompt", prompt, "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        eng = json.loads(r.stdout.strip().splitlines()[-1])
        eng_ids = eng["ids"]
        ids = tok.encode(prompt, add_special_tokens=False).ids
        P = ids.index(tok.token_to_id("<｜User｜>"))
        seq = torch.tensor(ids + eng_ids)
        with torch.no_grad():
            logits = net(seq[:P], seq[P:][None], a.attention)[0]
        pred = logits[len(ids) - P - 1: len(ids) - P - 1 + len(eng_ids)].argmax(-1).tolist()
        same = sum(p == e for p, e in zip(pred, eng_ids))
        lead = next((i for i, (p, e) in enumerate(zip(pred, eng_ids)) if p != e), len(eng_ids))
        total_same, total = total_same + same, total + len(eng_ids)
        print(f"{t['id']}: {same}/{len(eng_ids)} top-1 agree, first {lead} identical: {tok.decode(eng_ids)[:70]!r}")
    print(f"top-1 agreement {total_same}/{total} = {total_same / max(total, 1):.1%} ({a.attention})")


if __name__ == "__main__":
    main()
