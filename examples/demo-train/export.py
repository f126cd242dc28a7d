"""Writes a trained checkpoint as a Hugging Face DeepSeek-V3.2 model directory.

  python export.py --dsagent build/cli/dsagent --ckpt OUT/ckpt/final.pt --out examples/demo-model

Like the published checkpoint: linear weights in FP8 e4m3 with one power-of-two scale per 128x128
block (`weight_scale_inv`), embeddings, norms, the router and the indexer's weights_proj in bf16,
the indexer's LayerNorm and the router bias in fp32. config.json is the generated model's with the
demo dimensions. The FP8 rounding is the reference model's (tests/golden/reference_model.py).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "golden"))
import reference_model as R  # noqa: E402
from template_model import generated_model  # noqa: E402

BF16_2D = ("embed_tokens.weight", "lm_head.weight", "weights_proj.weight", "mlp.gate.weight")


def fp8_blocks(w):
    n, k = w.shape
    nb, kb = -(-n // 128), -(-k // 128)
    scale = np.ones((nb, kb), np.float32)
    codes = np.zeros((n, k), np.uint8)
    for i in range(nb):
        for j in range(kb):
            blk = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            amax = float(np.abs(blk).max())
            s = np.float32(2.0 ** np.ceil(np.log2(amax / 448.0))) if amax > 0 else np.float32(1.0)
            scale[i, j] = s
            codes[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = R.e4m3_codes(np.clip(blk / s, -448, 448))
    return codes, scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsagent", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ck = torch.load(a.ckpt, map_location="cpu")
    cfg, state = ck["config"], ck["state"]
    os.makedirs(a.out, exist_ok=True)

    tensors = {}
    for name, t in state.items():
        w = t.float().numpy()
        hf = name if name.startswith("lm_head") else "model." + name
        hf = hf.replace(".mlp.e_score_correction_bias", ".mlp.gate.e_score_correction_bias")  # a buffer here
        if name.endswith("e_score_correction_bias") or ".k_norm." in name:
            tensors[hf] = ("F32", w.astype(np.float32))
        elif w.ndim == 1 or name.endswith(BF16_2D):
            tensors[hf] = ("BF16", R.bf16_bits(w))
        else:
            codes, scale = fp8_blocks(w)
            tensors[hf] = ("F8_E4M3", codes)
            tensors[hf + "_scale_inv"] = ("F32", scale)
    R.save_safetensors(os.path.join(a.out, "model.safetensors"), tensors)

    with generated_model(a.dsagent) as tpl:
        config = json.load(open(os.path.join(tpl, "config.json")))
    config.update(cfg)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {len(tensors)} tensors to {a.out}")


if __name__ == "__main__":
    main()
