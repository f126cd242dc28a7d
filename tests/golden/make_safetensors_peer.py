"""Writes the loader's real-peer fixture with the reference safetensors library.

  tests/fixtures/loader/peer.safetensors      written by safetensors.numpy.save_file (NumPy arrays;
                                              BF16 and F8_E4M3 through ml_dtypes), with a metadata map
  tests/fixtures/loader/peer_expected.json    what a reader must find: dtype, shape and every value
                                              (floats as decoded by NumPy/ml_dtypes; integers exact)

The FP8 pair model.layers.0.self_attn.kv_a_proj_with_mqa.{weight,weight_scale_inv} is [576, 200]
e4m3 with F32 [5, 2] power-of-two block scales (partial last blocks in both directions). Its
dequantised values W[i, j] = e4m3(W)[i, j] * scale_inv[i // 128, j // 128] are given as exact
float64 row sums, the first and last rows in full, and an FNV-1a 64 hash of the float32 array's
little-endian bytes (row-major), which pins every bit of every value.

Usage: scripts/python-env.sh safetensors && .venv/bin/python tests/golden/make_safetensors_peer.py
"""
import json
import os

import ml_dtypes
import numpy as np
import safetensors
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "loader")
FP8 = ml_dtypes.float8_e4m3fn
BF16 = ml_dtypes.bfloat16
BLOCK = 128
W_NAME = "model.layers.0.self_attn.kv_a_proj_with_mqa.weight"
S_NAME = "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def finite_codes(rng, shape):
    """Random e4m3fn bit patterns, NaN (0x7f, 0xff) excluded, viewed as float8_e4m3fn."""
    codes = rng.integers(0, 256, size=shape, dtype=np.uint8)
    codes[(codes & 0x7F) == 0x7F] ^= 1
    return codes.view(FP8)


def main():
    rng = np.random.default_rng(20260)
    all_codes = np.array([c for c in range(256) if c & 0x7F != 0x7F], np.uint8).view(FP8)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    f32.flat[:4] = [-0.0, 1e-45, 3.4e38, -1.0]  # signed zero, smallest subnormal, near max
    f16 = (rng.standard_normal((2, 5)) * 100).astype(np.float16)
    f16.flat[:3] = [6e-8, 65504, -0.0]
    bf16 = (rng.standard_normal((4, 3)) * 1e3).astype(BF16)
    bf16.flat[:2] = [1e-40, -3e38]
    n, k = 576, 200
    weight = finite_codes(rng, (n, k))
    scale_inv = np.exp2(rng.integers(-14, -2, size=(-(-n // BLOCK), -(-k // BLOCK)))).astype(np.float32)

    tensors = {
        "peer.f32": f32,
        "peer.f16": f16,
        "peer.bf16": bf16,
        "peer.f8_all_codes": all_codes.reshape(2, 127),
        "peer.i8": np.array([-128, -1, 0, 1, 127], np.int8),
        "peer.i32": np.array([[-2147483648, -7, 0], [9, 65536, 2147483647]], np.int32),
        "peer.i64": np.array([-(2**62) - 3, 0, 2**53 + 1], np.int64),
        "peer.u8": np.array([0, 1, 128, 255, 7, 42], np.uint8),
        "peer.bool": np.array([True, False, False, True, True]),
        "peer.empty": np.zeros((0, 3), np.float32),
        W_NAME: weight,
        S_NAME: scale_inv,
    }
    metadata = {"format": "pt", "producer": "make_safetensors_peer.py"}
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "peer.safetensors"), metadata=metadata)

    expected = {"safetensors_version": safetensors.__version__, "ml_dtypes_version": ml_dtypes.__version__,
                "metadata": metadata, "tensors": {}}
    for name, arr in tensors.items():
        entry = {"dtype": {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3",
                           "int8": "I8", "int32": "I32", "int64": "I64", "uint8": "U8", "bool": "BOOL"}[arr.dtype.name],
                 "shape": list(arr.shape)}
        if arr.dtype.kind in "iub":
            entry["values"] = [int(v) for v in arr.reshape(-1)]
        elif arr.size <= 1000:
            entry["values"] = [float(v) for v in arr.astype(np.float32).reshape(-1)]
        else:
            entry["f32_fnv1a64"] = fnv1a64(arr.astype(np.float32).astype("<f4").tobytes())
        expected["tensors"][name] = entry

    scale_full = np.repeat(np.repeat(scale_inv, BLOCK, axis=0), BLOCK, axis=1)[:n, :k]
    dequant = weight.astype(np.float32) * scale_full  # float32 products
    expected["fp8_pairs"] = [{
        "weight": W_NAME, "scale_inv": S_NAME,
        "dequant_fnv1a64": fnv1a64(dequant.astype("<f4").tobytes()),
        # Each product has at most 4 significant bits within 2^-23..2^6, so these float64 sums are exact.
        "dequant_row_sums": [float(s) for s in dequant.astype(np.float64).sum(axis=1)],
        "dequant_first_row": [float(v) for v in dequant[0]],
        "dequant_last_row": [float(v) for v in dequant[-1]],
    }]
    with open(os.path.join(OUT, "peer_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
