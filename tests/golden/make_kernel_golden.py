"""Generates the CPU kernels' golden vectors (tests/fixtures/kernels/) from reference_model.py.

Every output is computed by reference_model's functions (or by the same lines its Model uses, for
the indexer scores, the two attention forms and the MoE router) on small seeded random inputs.
Writes golden.bin (raw little-endian arrays) and golden.json, which names each case's arrays with
their dtype ("f32", "u8", "i32"), shape and byte offset, plus the case's scalar parameters.

Usage: .venv/bin/python tests/golden/make_kernel_golden.py   (scripts/python-env.sh torch first)
"""
import json
import math
import os

import numpy as np

import reference_model as ref

F32 = np.float32
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "kernels")
rng = np.random.default_rng(20251201)

blob = bytearray()
index = {}


def put(case, name, arr):
    arr = np.ascontiguousarray(arr)
    dt = {np.dtype(F32): "f32", np.dtype(np.uint8): "u8", np.dtype(np.int32): "i32"}[arr.dtype]
    index.setdefault(case, {"arrays": {}, "params": {}})["arrays"][name] = {
        "dtype": dt, "shape": list(arr.shape), "offset": len(blob)}
    blob.extend(arr.tobytes())


def params(case, **kw):
    index.setdefault(case, {"arrays": {}, "params": {}})["params"].update(kw)


def bf16_randn(*shape, scale=1.0):
    return ref.bf16(rng.standard_normal(shape).astype(F32) * F32(scale))


def fp8_weight(n, k):
    """Random e4m3 codes and f32 block scales [ceil(n/128), k/128], like a checkpoint's."""
    w = rng.standard_normal((n, k)) * 100
    codes = ref.e4m3_codes(np.clip(w, -448, 448))
    scale_inv = (rng.uniform(0.5, 2.0, ((n + 127) // 128, k // 128)) * 1e-3).astype(F32)
    return codes, scale_inv


# ---- act_quant / fp8_roundtrip: blocks of very different magnitudes, one below the 1e-4 floor
x = bf16_randn(4, 256)
x[0, :128] *= F32(1e-7)
x[1, 128:] *= F32(300.0)
x[2, 5] = F32(0.0)
codes, scales = ref.act_quant(x, 128)
put("act_quant", "x", x)
put("act_quant", "codes", codes)
put("act_quant", "scales", scales.astype(F32))
put("act_quant", "roundtrip", ref.fp8_roundtrip(x, 128))

# ---- FP8 linear: n = 200 (a partial last scale row), few rows (decode path) and many (prefill)
for case, m in (("linear_fp8_decode", 2), ("linear_fp8_prefill", 37)):
    xin = bf16_randn(m, 256)
    wc, ws = fp8_weight(200, 256)
    put(case, "x", xin)
    put(case, "w", wc)
    put(case, "scale_inv", ws)
    put(case, "y", ref.Linear(wc, ws)(xin))

# ---- bf16 linear, k = 200 (a vector tail)
for case, m in (("linear_bf16_decode", 1), ("linear_bf16_prefill", 37)):
    xin = bf16_randn(m, 200)
    w = bf16_randn(70, 200, scale=0.1)
    put(case, "x", xin)
    put(case, "w", w)
    put(case, "y", ref.Linear(w)(xin))

# ---- norms
eps = 1e-6
x = bf16_randn(3, 160, scale=3.0)
w = rng.uniform(0.5, 1.5, 160).astype(F32)
put("rms_norm", "x", x)
put("rms_norm", "w", w)
put("rms_norm", "y", ref.rms_norm(x, w, eps))
res = bf16_randn(3, 160, scale=2.0)
r = (x + res).astype(F32)
put("rms_norm", "residual", res)
put("rms_norm", "y_fused", ref.rms_norm(r, w, eps))
put("rms_norm", "residual_out", ref.bf16(r))
params("rms_norm", eps=eps)

x = bf16_randn(3, 128, scale=2.0) + F32(0.5)
w = rng.uniform(0.5, 1.5, 128).astype(F32)
b = (rng.standard_normal(128) * 0.1).astype(F32)
put("layer_norm", "x", x)
put("layer_norm", "w", w)
put("layer_norm", "b", b)
put("layer_norm", "y", ref.layer_norm(x, w, b, eps))
params("layer_norm", eps=eps)

# ---- hadamard (sizes 128 and 64)
for n in (128, 64):
    x = bf16_randn(4, n)
    put(f"hadamard_{n}", "x", x)
    put(f"hadamard_{n}", "y", ref.hadamard(x, n ** -0.5))
    params(f"hadamard_{n}", scale=n ** -0.5)

# ---- YaRN frequencies and both RoPE layouts
for dim in (64, 32):
    cfg = {"qk_rope_head_dim": dim, "rope_theta": 10000.0,
           "rope_scaling": {"factor": 40.0, "original_max_position_embeddings": 4096,
                            "beta_fast": 32.0, "beta_slow": 1.0}}
    inv = ref.yarn_inv_freq(cfg)
    case = f"rope_{dim}"
    put(case, "inv_freq", inv)
    pos = np.array([0, 1, 17, 4095, 150000], dtype=np.int32)
    x = bf16_randn(5, 3, dim)
    put(case, "pos", pos)
    put(case, "x", x)
    put(case, "interleaved", ref.rope(x, pos[:, None], inv, True))
    put(case, "rotate_half", ref.rope(x, pos[:, None], inv, False))
    params(case, theta=10000.0, factor=40.0, original_max_pos=4096, beta_fast=32.0, beta_slow=1.0)

# ---- top-k with ties
s = rng.integers(0, 20, 300).astype(F32)
s[7] = -np.inf
put("topk", "scores", s)
put("topk", "idx", ref.topk_lower_index(s, 37).astype(np.int32))
params("topk", k=37)

# ---- indexer scores (the lines of reference Model.indexer): 2 queries, 4 heads, D = 64, 150 keys
nh, hd, n = 4, 64, 150
q = bf16_randn(2, nh, hd)
k = bf16_randn(n, hd)
qc, qs = ref.act_quant(q, hd)
kc, ks = ref.act_quant(k, hd)
wraw = (rng.standard_normal((2, nh))).astype(F32) * F32(nh ** -0.5)
w = (wraw * qs[..., 0] * F32(hd ** -0.5)).astype(F32)
n_keys = np.array([n, 77], dtype=np.int32)
kv = ref.e4m3_values(kc).astype(np.float64)
out = np.zeros((2, n), F32)
for i in range(2):
    logits = np.einsum("hd,sd->hs", ref.e4m3_values(qc[i]).astype(np.float64), kv[:n_keys[i]]).astype(F32)
    out[i, :n_keys[i]] = (ks[:n_keys[i], 0] * (np.maximum(logits, 0) * w[i][:, None]).sum(0)).astype(F32)
put("indexer", "k", k)
put("indexer", "k_codes", kc)
put("indexer", "k_scales", ks[:, 0].astype(F32))
put("indexer", "q_codes", qc)
put("indexer", "w", w)
put("indexer", "n_keys", n_keys)
put("indexer", "scores", out)

# ---- sparse MLA decode (reference absorbed branch): 4 heads, kv_lora 256, rope 32, 100 cached
H, kvr, dr, S = 4, 256, 32, 100
c_kv = bf16_randn(S, kvr)
kv_cache = ref.fp8_roundtrip(c_kv, 128)
pe_cache = bf16_randn(S, dr)
q_abs = bf16_randn(H, kvr, scale=0.3)
q_pe = bf16_randn(H, dr, scale=0.3)
sel = np.sort(rng.choice(S, 40, replace=False)).astype(np.int32)
scale = 0.1352337788608801
sc = (q_abs.astype(np.float64) @ kv_cache[sel].T.astype(np.float64)
      + q_pe.astype(np.float64) @ pe_cache[sel].T.astype(np.float64)).astype(F32)
pr = ref.softmax(sc * F32(scale))
o_lat = ref.bf16((pr @ kv_cache[sel].astype(np.float64)).astype(F32))
put("mla_decode", "c_kv", c_kv)
put("mla_decode", "kv_cache", kv_cache)
put("mla_decode", "pe_cache", pe_cache)
put("mla_decode", "q_abs", q_abs)
put("mla_decode", "q_pe", q_pe)
put("mla_decode", "sel", sel)
put("mla_decode", "o_lat", o_lat)
params("mla_decode", softmax_scale=scale)

# ---- sparse MHA (reference S > 1 branch for one query): 4 heads, nope 32, rope 16, v 32, 50 keys
H, dn, dr, dv, S = 4, 32, 16, 32, 50
q = bf16_randn(H, dn + dr, scale=0.5)
kv2 = bf16_randn(S, H, dn + dv)
pe = bf16_randn(S, dr)
sel = np.sort(rng.choice(S, 20, replace=False)).astype(np.int32)
k_nope, v = kv2[..., :dn], kv2[..., dn:]
sc = (np.einsum("hd,shd->hs", q[:, :dn].astype(np.float64), k_nope[sel].astype(np.float64))
      + np.einsum("hd,sd->hs", q[:, dn:].astype(np.float64), pe[sel].astype(np.float64))).astype(F32)
pr = ref.softmax(sc * F32(scale))
o = ref.bf16(np.einsum("hs,shd->hd", pr, v[sel].astype(np.float64)).astype(F32))
put("mha", "q", q)
put("mha", "kv", kv2)
put("mha", "k_pe", pe)
put("mha", "sel", sel)
put("mha", "o", o)
params("mha", softmax_scale=scale)

# ---- MoE router (reference Model.moe selection lines) and SwiGLU (reference mlp)
for case, E, G, TG, K, T in (("moe_small", 16, 4, 2, 4, 6), ("moe_v32", 256, 8, 4, 8, 4)):
    logits = (rng.standard_normal((T, E)) * 2).astype(F32)
    bias = (rng.standard_normal(E) * 0.1).astype(F32)
    s = (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(F32)
    sb = (s + bias).astype(F32)
    idx_all, w_all = [], []
    for i in range(T):
        grp = sb[i].reshape(G, E // G)
        gs = np.sort(grp, axis=1)[:, -2:].sum(1)
        keep = ref.topk_lower_index(gs, TG)
        masked = np.full(E, -np.inf, F32)
        for g in keep:
            masked[g * (E // G):(g + 1) * (E // G)] = sb[i, g * (E // G):(g + 1) * (E // G)]
        idx = np.argsort(-masked.astype(np.float64), kind="stable")[:K]
        wt = s[i, idx]
        wt = (wt / wt.sum() * F32(2.5)).astype(F32)
        idx_all.append(idx.astype(np.int32))
        w_all.append(wt)
    put(case, "logits", logits)
    put(case, "bias", bias)
    put(case, "idx", np.array(idx_all, dtype=np.int32))
    put(case, "weight", np.array(w_all, dtype=F32))
    params(case, n_group=G, topk_group=TG, topk=K, routed_scaling=2.5)

g = bf16_randn(300, scale=3.0)
u = bf16_randn(300, scale=2.0)
put("swiglu", "gate", g)
put("swiglu", "up", u)
gd = g.astype(np.float64)
put("swiglu", "out", ref.bf16((gd / (1 + np.exp(-gd)) * u.astype(np.float64)).astype(F32)))

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "golden.bin"), "wb") as f:
    f.write(blob)
with open(os.path.join(OUT, "golden.json"), "w") as f:
    json.dump(index, f, indent=1, sort_keys=True)
print(f"wrote {len(blob)} bytes, {len(index)} cases")
