"""Independent CPU reference of the DeepSeek-V3.2 forward pass (model-spec.md sections 3-8, 11).

A NumPy port of DeepSeek's final V3.2 inference/model.py, generalised to any dims, with bf16 and
fp8 e4m3 rounding emulated bit-exactly where the reference casts. It is the source of the engine's
golden numbers (make_engine_golden.py). Two extensions over DeepSeek's reference, matching what
the engine does:
  - prefill may start at any position against filled caches: a query at absolute position p
    selects among and attends to cached keys 0..p (MHA form over the cached latents);
  - decode (one token) reuses the caches in the absorbed (MQA) form.
Scores and softmax are fp32 (the model-spec ENGINE NOTE), not the final reference's bf16.
"""
import json
import math
import struct

import numpy as np

F32 = np.float32


# ---------------------------------------------------------------- rounding helpers

def bf16(x):
    """Round fp32 to bf16 (round to nearest even), returned as fp32."""
    b = np.asarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(F32)


def bf16_bits(x):
    return (bf16(x).view(np.uint32) >> 16).astype(np.uint16)


def bf16_from_bits(u16):
    return (np.asarray(u16, dtype=np.uint32) << 16).view(F32)


def _e4m3_table():
    vals = []
    for code in range(0x7F):  # 0x7F is NaN in e4m3fn
        e, m = code >> 3, code & 7
        vals.append(m * 2.0 ** -9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
    return np.array(vals, dtype=np.float64)


E4M3 = _e4m3_table()  # positive codes 0..126, ascending


def e4m3_codes(x):
    """fp32 -> e4m3fn codes, round to nearest even; |x| must already be <= 448."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    hi = np.clip(np.searchsorted(E4M3, a), 1, len(E4M3) - 1)
    lo = hi - 1
    dlo, dhi = a - E4M3[lo], E4M3[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    return np.where(np.signbit(x) & (code != 0), code | 0x80, code).astype(np.uint8)


def e4m3_values(codes):
    codes = np.asarray(codes, dtype=np.uint8)
    v = E4M3[codes & 0x7F]
    return np.where(codes & 0x80, -v, v).astype(F32)


def act_quant(x, block):
    """Per row and block: ue8m0 scale s = 2^ceil(log2(max(amax,1e-4)/448)); returns (codes, s)."""
    x = np.asarray(x, dtype=F32)
    shp = x.shape
    xb = x.reshape(shp[:-1] + (shp[-1] // block, block))
    amax = np.maximum(np.abs(xb).max(axis=-1), F32(1e-4))
    ratio = (amax / F32(448.0)).astype(F32)
    m, e = np.frexp(ratio)
    s = np.ldexp(np.ones_like(ratio), np.where(m == 0.5, e - 1, e)).astype(F32)
    q = np.clip(xb / s[..., None], -448.0, 448.0)
    return e4m3_codes(q).reshape(shp), s


def fp8_roundtrip(x, block):
    codes, s = act_quant(x, block)
    v = e4m3_values(codes).reshape(s.shape + (block,)) * s[..., None]
    return bf16(v.reshape(np.shape(x)))


# ---------------------------------------------------------------- weights

class Linear:
    """A checkpoint linear: bf16 W[n,k], or fp8 e4m3 W[n,k] with f32 scale_inv [ceil(n/128), ceil(k/128)]."""

    def __init__(self, w, scale_inv=None):
        self.scale_inv = scale_inv
        if scale_inv is None:
            self.w = np.asarray(w, dtype=F32)  # bf16 values
        else:
            self.codes = w
            self.wq = e4m3_values(w)

    def dequant(self):
        """bf16 [n,k] (weight_dequant)."""
        if self.scale_inv is None:
            return self.w
        n, k = self.wq.shape
        s = np.repeat(np.repeat(self.scale_inv, 128, 0)[:n], 128, 1)[:, :k]
        return bf16(self.wq * s)

    def __call__(self, x):
        """y = x . W^T rounded to bf16, x [..., k] (bf16 values)."""
        x = np.asarray(x, dtype=F32)
        if self.scale_inv is None:
            return bf16(x.astype(np.float64) @ self.w.T.astype(np.float64))
        shp = x.shape
        x2 = x.reshape(-1, shp[-1])
        codes, sa = act_quant(x2, 128)
        xq = e4m3_values(codes).astype(np.float64)
        n, k = self.wq.shape
        y = np.zeros((x2.shape[0], n))
        sw = np.repeat(self.scale_inv, 128, 0)[:n].astype(np.float64)
        for kb in range(k // 128):
            part = xq[:, kb * 128:(kb + 1) * 128] @ self.wq[:, kb * 128:(kb + 1) * 128].T.astype(np.float64)
            part = part.astype(F32).astype(np.float64)  # the MMA accumulates each k-block in fp32
            y += part * sa[:, kb:kb + 1] * sw[None, :, kb]
        return bf16(y.astype(F32)).reshape(shp[:-1] + (n,))


def rms_norm(x, w, eps):
    x = np.asarray(x, dtype=F32)
    ms = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
    return bf16(w * (x / np.sqrt(ms + eps)).astype(F32))


def layer_norm(x, w, b, eps):
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return bf16(((x - mu) / np.sqrt(var + eps) * w + b).astype(F32))


def hadamard(x, scale):
    n = x.shape[-1]
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return bf16((x.astype(np.float64) @ h * scale).astype(F32))


# ---------------------------------------------------------------- rope

def yarn_inv_freq(cfg):
    dim = cfg["qk_rope_head_dim"]
    rs = cfg["rope_scaling"]
    base, factor, orig = cfg["rope_theta"], rs["factor"], rs["original_max_position_embeddings"]
    freqs = (1.0 / (F32(base) ** (np.arange(0, dim, 2, dtype=F32) / F32(dim)))).astype(F32)

    def corr(n_rot):
        return dim * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr(rs["beta_fast"])), 0)
    high = min(math.ceil(corr(rs["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=F32) - F32(low)) / F32(high - low), 0, 1).astype(F32)
    return (freqs / F32(factor) * ramp + freqs * (F32(1) - ramp)).astype(F32)


def rope(x, pos, inv_freq, interleaved):
    """x [..., rope_dim] at absolute position pos (scalar or per-leading-row array broadcastable)."""
    ang = (np.asarray(pos, dtype=F32)[..., None] * inv_freq).astype(F32)
    c, s = np.cos(ang).astype(F32), np.sin(ang).astype(F32)
    x = np.asarray(x, dtype=F32)
    half = x.shape[-1] // 2
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = x[..., :half], x[..., half:]
    ra, rb = (a * c - b * s).astype(F32), (a * s + b * c).astype(F32)
    out = np.empty_like(x)
    if interleaved:
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., :half], out[..., half:] = ra, rb
    return bf16(out)


# ---------------------------------------------------------------- model

def topk_lower_index(scores, k):
    """The k largest, ties by lower position; returned ascending."""
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    return np.sort(order[:k])


class Model:
    def __init__(self, cfg, tensors, max_seq):
        self.cfg, self.t = cfg, tensors
        c = cfg
        self.eps = c["rms_norm_eps"]
        self.inv_freq = yarn_inv_freq(c)
        rs = c["rope_scaling"]
        mscale = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0
        self.softmax_scale = (c["qk_nope_head_dim"] + c["qk_rope_head_dim"]) ** -0.5 * mscale * mscale
        L = c["num_hidden_layers"]
        self.kv_cache = np.zeros((L, max_seq, c["kv_lora_rank"]), F32)
        self.pe_cache = np.zeros((L, max_seq, c["qk_rope_head_dim"]), F32)
        self.idx_k = np.zeros((L, max_seq, c["index_head_dim"]), F32)  # dequantised fp8 values
        self.idx_kcodes = np.zeros((L, max_seq, c["index_head_dim"]), np.uint8)
        self.idx_kscale = np.zeros((L, max_seq), F32)
        self.trace = None  # when a dict: per-layer hidden states, indexer scores and top-k sets

    def lin(self, name):
        w = self.t[name + ".weight"]
        s = self.t.get(name + ".weight_scale_inv")
        return Linear(w, s)

    def vec(self, name):
        return np.asarray(self.t[name], dtype=F32)

    # -- indexer (model-spec 5)
    def indexer(self, L, x, qr, pos):
        c, p = self.cfg, f"model.layers.{L}.self_attn.indexer."
        nh, hd, rd = c["index_n_heads"], c["index_head_dim"], c["qk_rope_head_dim"]
        blk = min(128, hd)
        S = x.shape[0]
        q = self.lin(p + "wq_b")(qr).reshape(S, nh, hd)
        q[..., :rd] = rope(q[..., :rd], pos[:, None], self.inv_freq, False)
        k = self.lin(p + "wk")(x)
        k = layer_norm(k, self.vec(p + "k_norm.weight"), self.vec(p + "k_norm.bias"), self.eps)
        k[:, :rd] = rope(k[:, :rd], pos, self.inv_freq, False)
        q, k = hadamard(q, hd ** -0.5), hadamard(k, hd ** -0.5)
        qc, qs = act_quant(q, blk)
        kc, ks = act_quant(k, blk)
        self.idx_kcodes[L, pos] = kc
        self.idx_k[L, pos] = e4m3_values(kc)
        self.idx_kscale[L, pos] = ks[:, 0]
        wp = self.vec(p + "weights_proj.weight")
        w = (x.astype(np.float64) @ wp.T.astype(np.float64)).astype(F32) * F32(nh ** -0.5)
        w = (w * qs[..., 0] * F32(hd ** -0.5)).astype(F32)
        qv = e4m3_values(qc).astype(np.float64)
        sel, all_scores = [], []
        for i in range(S):
            n = pos[i] + 1
            logits = np.einsum("hd,sd->hs", qv[i], self.idx_k[L, :n].astype(np.float64)).astype(F32)
            sc = (self.idx_kscale[L, :n] * (np.maximum(logits, 0) * w[i][:, None]).sum(0)).astype(F32)
            sel.append(topk_lower_index(sc, min(c["index_topk"], n)))
            all_scores.append(sc)
        return sel, all_scores

    # -- MLA (model-spec 4.3)
    def attention(self, L, x, pos):
        c, p = self.cfg, f"model.layers.{L}.self_attn."
        H, dn, dr, dv, kvr = (c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"],
                              c["v_head_dim"], c["kv_lora_rank"])
        S = x.shape[0]
        qr = rms_norm(self.lin(p + "q_a_proj")(x), self.vec(p + "q_a_layernorm.weight"), self.eps)
        q = self.lin(p + "q_b_proj")(qr).reshape(S, H, dn + dr)
        q_nope, q_pe = q[..., :dn], rope(q[..., dn:], pos[:, None], self.inv_freq, True)
        kv = self.lin(p + "kv_a_proj_with_mqa")(x)
        c_kv = rms_norm(kv[:, :kvr], self.vec(p + "kv_a_layernorm.weight"), self.eps)
        k_pe = rope(kv[:, kvr:], pos, self.inv_freq, True)
        self.kv_cache[L, pos] = fp8_roundtrip(c_kv, 128)
        self.pe_cache[L, pos] = k_pe
        sel, scores = self.indexer(L, x, qr, pos)
        if self.trace is not None:
            self.trace.setdefault("topk", {}).setdefault(L, []).extend(sel)
            self.trace.setdefault("scores", {}).setdefault(L, []).extend(scores)
        wkv_b = self.lin(p + "kv_b_proj")
        end = pos[-1] + 1
        o = np.zeros((S, H, dv), F32)
        if S > 1:  # MHA form over the cached latents 0..end-1
            kv2 = wkv_b(self.kv_cache[L, :end]).reshape(end, H, dn + dv)
            k_nope, v = kv2[..., :dn], kv2[..., dn:]
            for i in range(S):
                ks = sel[i]
                sc = (np.einsum("hd,shd->hs", q_nope[i].astype(np.float64), k_nope[ks].astype(np.float64))
                      + np.einsum("hd,sd->hs", q_pe[i].astype(np.float64),
                                  self.pe_cache[L, ks].astype(np.float64))).astype(F32)
                pr = softmax(sc * F32(self.softmax_scale))
                o[i] = bf16(np.einsum("hs,shd->hd", pr, v[ks].astype(np.float64)).astype(F32))
        else:  # absorbed (MQA) form
            W = wkv_b.dequant().reshape(H, dn + dv, kvr)
            w_uk, w_uv = W[:, :dn].astype(np.float64), W[:, dn:].astype(np.float64)
            ks = sel[0]
            q_abs = bf16(np.einsum("hd,hdc->hc", q_nope[0].astype(np.float64), w_uk).astype(F32))
            sc = (q_abs.astype(np.float64) @ self.kv_cache[L, ks].T.astype(np.float64)
                  + q_pe[0].astype(np.float64) @ self.pe_cache[L, ks].T.astype(np.float64)).astype(F32)
            pr = softmax(sc * F32(self.softmax_scale))
            o_lat = bf16((pr @ self.kv_cache[L, ks].astype(np.float64)).astype(F32))
            o[0] = bf16(np.einsum("hc,hdc->hd", o_lat.astype(np.float64), w_uv).astype(F32))
        return self.lin(p + "o_proj")(o.reshape(S, H * dv))

    # -- FFN (model-spec 6)
    def mlp(self, prefix, x):
        g = self.lin(prefix + "gate_proj")(x).astype(np.float64)
        u = self.lin(prefix + "up_proj")(x).astype(np.float64)
        return self.lin(prefix + "down_proj")(bf16((g / (1 + np.exp(-g)) * u).astype(F32)))

    def moe(self, L, x):
        c, p = self.cfg, f"model.layers.{L}.mlp."
        E, G, TG, K = c["n_routed_experts"], c["n_group"], c["topk_group"], c["num_experts_per_tok"]
        logits = (x.astype(np.float64) @ self.vec(p + "gate.weight").T.astype(np.float64)).astype(F32)
        s = (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(F32)
        sb = (s + self.vec(p + "gate.e_score_correction_bias")).astype(F32)
        y = np.zeros(x.shape, np.float64)
        for i in range(x.shape[0]):
            grp = sb[i].reshape(G, E // G)
            gs = np.sort(grp, axis=1)[:, -2:].sum(1)
            keep = topk_lower_index(gs, TG)
            masked = np.full(E, -np.inf, F32)
            for g in keep:
                masked[g * (E // G):(g + 1) * (E // G)] = sb[i, g * (E // G):(g + 1) * (E // G)]
            idx = np.argsort(-masked.astype(np.float64), kind="stable")[:K]
            w = s[i, idx]
            w = (w / w.sum() * F32(c["routed_scaling_factor"])).astype(F32)
            for e, we in zip(idx, w):
                y[i] += self.mlp(f"{p}experts.{e}.", x[i:i + 1])[0].astype(np.float64) * we
        y += self.mlp(p + "shared_experts.", x)
        return bf16(y.astype(F32))

    # -- top level (model-spec 4.1)
    def forward(self, tokens, start_pos):
        """Runs tokens at positions start_pos.. against the caches; returns fp32 logits of the last one."""
        c = self.cfg
        pos = np.arange(start_pos, start_pos + len(tokens))
        x = bf16_from_bits(self.t["model.embed_tokens.weight"][np.asarray(tokens)])
        residual = None
        for L in range(c["num_hidden_layers"]):
            pre = f"model.layers.{L}."
            if residual is None:
                residual, x = x, rms_norm(x, self.vec(pre + "input_layernorm.weight"), self.eps)
            else:
                r = (x + residual).astype(F32)
                x, residual = rms_norm(r, self.vec(pre + "input_layernorm.weight"), self.eps), bf16(r)
            x = self.attention(L, x, pos)
            r = (x + residual).astype(F32)
            x, residual = rms_norm(r, self.vec(pre + "post_attention_layernorm.weight"), self.eps), bf16(r)
            x = self.moe(L, x) if L >= c["first_k_dense_replace"] else self.mlp(pre + "mlp.", x)
            if self.trace is not None:
                self.trace.setdefault("hidden", {}).setdefault(L, []).append((x + residual).astype(F32))
        h = rms_norm((x[-1] + residual[-1]).astype(F32), self.vec("model.norm.weight"), self.eps)
        head = bf16_from_bits(self.t["lm_head.weight"]).astype(np.float64)
        return (h.astype(np.float64) @ head.T).astype(F32)


def softmax(sc):
    sc = sc.astype(np.float64)
    e = np.exp(sc - sc.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(F32)


# ---------------------------------------------------------------- safetensors (written and read by hand)

_ST_DTYPES = {"BF16": (np.uint16, 2), "F32": (np.float32, 4), "F8_E4M3": (np.uint8, 1)}


def save_safetensors(path, tensors):
    """tensors: name -> (dtype string, np array of the raw element type)."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        dt, arr = tensors[name]
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """name -> array; bf16 kept as raw uint16 for the embedding and head, as fp32 values elsewhere."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        npdt, _ = _ST_DTYPES[h["dtype"]]
        a, b = h["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=npdt).reshape(h["shape"])
        if h["dtype"] == "BF16" and name not in ("model.embed_tokens.weight", "lm_head.weight"):
            arr = bf16_from_bits(arr)
        out[name] = arr
    return out
