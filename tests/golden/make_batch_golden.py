"""Golden data for the batch module, computed independently of the C++ code (standard library only).

Writes tests/fixtures/batch/:
  sample.csv            a BrowseComp-format CSV (problem, answer, problem_topic, canary), encrypted
                        with hashlib/base64 exactly as simple-evals' decrypt() expects
  sample_expected.json  the plaintext of every row
  calibration.json      confidence/correct vectors and the calibration error of HLE's calib_err

Usage: python3 tests/golden/make_batch_golden.py
"""
import base64
import csv
import hashlib
import json
import math
import os
import random

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "batch")
CANARY = "DSAGENT TEST DATA. canary GUID dsagent:5f0c1e8a-2b7d-4c39-9a61-d3e4f5a6b7c8"


def encrypt(text, password):
    data = text.encode()
    key = hashlib.sha256(password.encode()).digest()
    key = key * (len(data) // len(key)) + key[: len(data) % len(key)]
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, key))).decode()


def calib_err(confidence, correct, beta=100):
    """HLE / BrowseComp-Plus calib_err with p = 2, confidences in [0, 1]; last bin skipped."""
    idx = sorted(range(len(confidence)), key=lambda i: confidence[i])
    conf = [confidence[i] for i in idx]
    corr = [correct[i] for i in idx]
    bins = [[i * beta, (i + 1) * beta] for i in range(len(conf) // beta)]
    bins[-1] = [bins[-1][0], len(conf)]
    cerr, total = 0.0, len(conf)
    for i in range(len(bins) - 1):
        c, k = conf[bins[i][0]:bins[i][1]], corr[bins[i][0]:bins[i][1]]
        if c:
            diff = abs(sum(c) / len(c) - sum(k) / len(k))
            cerr += len(c) / total * diff ** 2
    return math.sqrt(cerr)


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = [
        ("What is the capital of the fictional country Veloria?", "Port Almund", "Geography"),
        ("Which year did the (made-up) Orrin Bridge open, \"officially\"?", "1911", "History"),
        ("Name, with accents, the café in the Kessel story.", "Café Lümen", "Art"),
        ("Multi-line\nquestion, with a comma", "42", "Other"),
    ]
    with open(os.path.join(OUT, "sample.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["problem", "answer", "problem_topic", "canary"])
        for q, a, t in rows:
            w.writerow([encrypt(q, CANARY), encrypt(a, CANARY), t, CANARY])
    with open(os.path.join(OUT, "sample_expected.json"), "w") as f:
        json.dump([{"id": str(i), "question": q, "answer": a, "topic": t} for i, (q, a, t) in enumerate(rows)],
                  f, indent=1, ensure_ascii=False)

    rng = random.Random(7)
    cases = []
    for n in (150, 250, 450, 1000):
        conf = rng.sample(range(0, 100001), n)  # distinct, so the sort order is unique
        conf = [c / 1000.0 for c in conf]        # percent with 3 decimals
        correct = [rng.random() < c / 100.0 * 0.8 for c in conf]
        cases.append({"confidence": conf, "correct": correct,
                      "calibration_error": 100.0 * calib_err([c / 100.0 for c in conf], correct)})
    with open(os.path.join(OUT, "calibration.json"), "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main()
