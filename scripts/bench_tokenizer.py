#!/usr/bin/env python3
"""Times DeepSeek-V3 encoding on one thread: dsagent's tokenizer vs HF `tokenizers`, same texts.

Workloads: the parity corpus (12,000 short varied strings, tests/fixtures/tokenizer/corpus_ids.jsonl.gz)
and documents (the product docs and this repository's sources, one text per file). Plain text mode
(no added tokens matched) on both sides. Each side makes several passes; the first starts with an
empty word cache. Not a test: prints a table.

Usage: scripts/python-env.sh tokenizer && .venv/bin/python scripts/bench_tokenizer.py [build-dir]
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
PASSES = 3


def workloads():
    with gzip.open(os.path.join(FIXTURES, "corpus_ids.jsonl.gz"), "rt", encoding="utf-8") as f:
        corpus = [json.loads(line)["text"] for line in f]
    docs = []
    for base in (os.path.join(ROOT, "..", "shared", "docs"), os.path.join(ROOT, "engine"), os.path.join(ROOT, "tools"),
                 os.path.join(ROOT, "cli"), os.path.join(ROOT, "tests")):
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if name.endswith((".md", ".cpp", ".hpp", ".py")):
                    with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                        docs.append(f.read())
    return {"corpus": corpus, "documents": docs}


def bench_hf(tok, texts):
    times, n_tokens = [], 0
    for _ in range(PASSES):
        t0 = time.perf_counter()
        n_tokens = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
        times.append(time.perf_counter() - t0)
    return times, n_tokens


def bench_dsagent(binary, model_dir, texts):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    try:
        out = subprocess.run([binary, "tokenize", "--model", model_dir, "--bench-file", f.name,
                              "--bench-passes", str(PASSES)], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    r = json.loads(out)
    return r["seconds"], r["n_tokens"]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    binary = os.path.join(build, "cli", "dsagent")
    with gzip.open(os.path.join(FIXTURES, "deepseek-v3-tokenizer.json.gz"), "rb") as f:
        raw = f.read()
    spec = json.loads(raw)
    spec["added_tokens"] = []
    hf = Tokenizer.from_str(json.dumps(spec))
    with tempfile.TemporaryDirectory() as model_dir:
        with open(os.path.join(model_dir, "tokenizer.json"), "wb") as f:
            f.write(raw)
        print(f"{'workload':<10} {'texts':>6} {'MB':>6} {'side':<8} {'first pass MB/s':>16} {'best pass MB/s':>15} {'tokens':>8}")
        for name, texts in workloads().items():
            mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
            for side, (times, n_tokens) in (("hf", bench_hf(hf, texts)),
                                            ("dsagent", bench_dsagent(binary, model_dir, texts))):
                print(f"{name:<10} {len(texts):>6} {mb:>6.2f} {side:<8} {mb / times[0]:>16.2f} "
                      f"{mb / min(times):>15.2f} {n_tokens:>8}")


if __name__ == "__main__":
    main()
