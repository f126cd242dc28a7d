"""Generates the engine's golden fixtures (tests/fixtures/engine/) from reference_model.py.

Writes two tiny checkpoints in the exact Hugging Face layout (config.json + model.safetensors),
built from this script's own seeded random weights (independent of the C++ make-model):
  tiny-fp8/   FP8 e4m3 linears with 128x128 ue8m0 block scales (weight_scale_inv)
  tiny-bf16/  the same model with every linear dequantised to bf16 (no quantization_config)
and, for each, golden_<fmt>.json + golden_<fmt>.bin (little-endian float32 arrays; the JSON names
each array's offset in floats and its shape):
  prompt (60 ids, > 3x index_topk), per-layer hidden states of the prefill (ffn output + residual,
  fp32 [S, hidden]), per-layer indexer scores [S, S] (row t valid for keys 0..t) and top-k sets,
  prefill logits, 20 greedy decode steps (ids, logits, per-layer indexer scores and top-k sets), and the same ids and
  logits after a chunked prefill.

Usage: .venv/bin/python tests/golden/make_engine_golden.py   (scripts/python-env.sh torch first)
"""
import json
import os

import numpy as np

import reference_model as ref

F32 = np.float32
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "engine")

TINY = {
    "architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32",
    "vocab_size": 2048, "hidden_size": 128, "num_hidden_layers": 3, "first_k_dense_replace": 1,
    "num_nextn_predict_layers": 0, "moe_layer_freq": 1, "intermediate_size": 256,
    "moe_intermediate_size": 128, "n_routed_experts": 8, "n_shared_experts": 1,
    "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": True,
    "num_attention_heads": 4, "num_key_value_heads": 4, "q_lora_rank": 128, "kv_lora_rank": 128,
    "qk_nope_head_dim": 32, "qk_rope_head_dim": 32, "v_head_dim": 32, "index_n_heads": 4,
    "index_head_dim": 64, "index_topk": 16, "hidden_act": "silu", "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": {"type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
                     "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0},
    "max_position_embeddings": 163840, "attention_bias": False, "tie_word_embeddings": False,
    "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "bfloat16",
}
FP8_QUANT = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
             "scale_fmt": "ue8m0", "weight_block_size": [128, 128]}
PROMPT_LEN, N_DECODE, CHUNKS = 60, 20, (0, 23, 41, 60)


def quantize_blocks(w):
    """float [n,k] -> (e4m3 codes, f32 scale_inv [ceil(n/128), ceil(k/128)]) with ue8m0 scales."""
    n, k = w.shape
    nb, kb = -(-n // 128), -(-k // 128)
    codes = np.zeros((n, k), np.uint8)
    scales = np.zeros((nb, kb), F32)
    for i in range(nb):
        for j in range(kb):
            blk = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            amax = max(float(np.abs(blk).max()), 1e-4)
            s = F32(2.0 ** np.ceil(np.log2(amax / 448.0)))
            codes[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = ref.e4m3_codes(np.clip(blk / s, -448, 448))
            scales[i, j] = s
    return codes, scales


def make_weights(cfg, rng):
    """name -> (kind, float array): kind 'linear' (fp8 in the FP8 checkpoint), 'bf16' or 'f32'."""
    c = cfg
    D, H = c["hidden_size"], c["num_attention_heads"]
    dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    W = {}

    def lin(name, n, k):
        W[name + ".weight"] = ("linear", rng.standard_normal((n, k)).astype(F32) * F32(k ** -0.5))

    def norm(name, n):
        W[name + ".weight"] = ("bf16", (1 + 0.1 * rng.standard_normal(n)).astype(F32))

    def mlp(prefix, inter):
        lin(prefix + "gate_proj", inter, D)
        lin(prefix + "up_proj", inter, D)
        lin(prefix + "down_proj", D, inter)

    W["model.embed_tokens.weight"] = ("bf16", rng.standard_normal((c["vocab_size"], D)).astype(F32))
    W["lm_head.weight"] = ("bf16", rng.standard_normal((c["vocab_size"], D)).astype(F32) * F32(D ** -0.5))
    norm("model.norm", D)
    for L in range(c["num_hidden_layers"]):
        p = f"model.layers.{L}."
        norm(p + "input_layernorm", D)
        norm(p + "post_attention_layernorm", D)
        a = p + "self_attn."
        lin(a + "q_a_proj", c["q_lora_rank"], D)
        norm(a + "q_a_layernorm", c["q_lora_rank"])
        lin(a + "q_b_proj", H * (dn + dr), c["q_lora_rank"])
        lin(a + "kv_a_proj_with_mqa", c["kv_lora_rank"] + dr, D)
        norm(a + "kv_a_layernorm", c["kv_lora_rank"])
        lin(a + "kv_b_proj", H * (dn + dv), c["kv_lora_rank"])
        lin(a + "o_proj", D, H * dv)
        i = a + "indexer."
        lin(i + "wq_b", c["index_n_heads"] * c["index_head_dim"], c["q_lora_rank"])
        lin(i + "wk", c["index_head_dim"], D)
        W[i + "k_norm.weight"] = ("f32", (1 + 0.1 * rng.standard_normal(c["index_head_dim"])).astype(F32))
        W[i + "k_norm.bias"] = ("f32", (0.1 * rng.standard_normal(c["index_head_dim"])).astype(F32))
        W[i + "weights_proj.weight"] = ("bf16", rng.standard_normal((c["index_n_heads"], D)).astype(F32)
                                        * F32(D ** -0.5))
        if L < c["first_k_dense_replace"]:
            mlp(p + "mlp.", c["intermediate_size"])
        else:
            m = p + "mlp."
            W[m + "gate.weight"] = ("bf16", rng.standard_normal((c["n_routed_experts"], D)).astype(F32)
                                    * F32(D ** -0.5))
            W[m + "gate.e_score_correction_bias"] = ("f32", (0.05 * rng.standard_normal(
                c["n_routed_experts"])).astype(F32))
            for e in range(c["n_routed_experts"]):
                mlp(f"{m}experts.{e}.", c["moe_intermediate_size"])
            mlp(m + "shared_experts.", c["moe_intermediate_size"] * c["n_shared_experts"])
    return W


def checkpoint_tensors(W, fp8):
    """The safetensors contents: FP8 linears with scale_inv, or bf16 = dequantised FP8."""
    out = {}
    for name, (kind, w) in W.items():
        if kind == "f32":
            out[name] = ("F32", w)
        elif kind == "bf16":
            out[name] = ("BF16", ref.bf16_bits(w))
        else:
            codes, s = quantize_blocks(w)
            if fp8:
                out[name] = ("F8_E4M3", codes)
                out[name[:-len(".weight")] + ".weight_scale_inv"] = ("F32", s)
            else:
                out[name] = ("BF16", ref.bf16_bits(ref.Linear(codes, s).dequant()))
    return out


class Blob:
    def __init__(self):
        self.parts, self.index, self.n = [], {}, 0

    def add(self, name, arr):
        arr = np.ascontiguousarray(arr, dtype="<f4")
        self.index[name] = {"offset": self.n, "shape": list(arr.shape)}
        self.parts.append(arr.tobytes())
        self.n += arr.size


def greedy(model, logits, start, blob=None):
    """20 greedy steps; returns ids, logits and each step's top-k set per layer (scores into blob)."""
    ids, all_logits, topk = [int(np.argmax(logits))], [], []
    for i in range(N_DECODE):
        model.trace = {}
        lg = model.forward([ids[-1]], start + i)
        topk.append([model.trace["topk"][L][0].tolist() for L in sorted(model.trace["topk"])])
        for L in sorted(model.trace["scores"]):
            if blob is not None:
                blob.add(f"decode_scores.{i}.{L}", model.trace["scores"][L][0])
        model.trace = None
        all_logits.append(lg)
        ids.append(int(np.argmax(lg)))
    return ids, np.stack(all_logits), topk


def run(fmt, W, cfg, prompt):
    d = os.path.join(OUT, f"tiny-{fmt}")
    os.makedirs(d, exist_ok=True)
    conf = dict(cfg)
    if fmt == "fp8":
        conf["quantization_config"] = FP8_QUANT
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    ref.save_safetensors(os.path.join(d, "model.safetensors"), checkpoint_tensors(W, fmt == "fp8"))

    tensors = ref.load_safetensors(os.path.join(d, "model.safetensors"))
    max_seq = PROMPT_LEN + N_DECODE + 1
    blob = Blob()
    m = ref.Model(cfg, tensors, max_seq)
    m.trace = {}
    logits = m.forward(prompt, 0)
    trace, m.trace = m.trace, None
    topk = []
    for L in range(cfg["num_hidden_layers"]):
        blob.add(f"hidden.{L}", trace["hidden"][L][0])
        sc = np.full((PROMPT_LEN, PROMPT_LEN), -np.inf, F32)
        for t, row in enumerate(trace["scores"][L]):
            sc[t, :len(row)] = row
        blob.add(f"indexer_scores.{L}", sc)
        topk.append([s.tolist() for s in trace["topk"][L]])
    blob.add("prefill_logits", logits)
    ids, dl, dtopk = greedy(m, logits, PROMPT_LEN, blob)
    blob.add("decode_logits", dl)

    mc = ref.Model(cfg, tensors, max_seq)
    for a, b in zip(CHUNKS[:-1], CHUNKS[1:]):
        clogits = mc.forward(prompt[a:b], a)
    blob.add("chunked_prefill_logits", clogits)
    cids, cdl, _ = greedy(mc, clogits, PROMPT_LEN)
    blob.add("chunked_decode_logits", cdl)

    meta = {"checkpoint": f"tiny-{fmt}", "prompt": prompt, "chunks": list(CHUNKS),
            "decode_ids": ids, "chunked_decode_ids": cids, "topk": topk, "decode_topk": dtopk, "arrays": blob.index,
            "bin": f"golden_{fmt}.bin"}
    with open(os.path.join(OUT, f"golden_{fmt}.bin"), "wb") as f:
        f.write(b"".join(blob.parts))
    with open(os.path.join(OUT, f"golden_{fmt}.json"), "w") as f:
        json.dump(meta, f, separators=(",", ":"))
    print(fmt, "decode ids", ids, "chunked equal:", ids == cids,
          "max |chunked - one-shot| logits", float(np.abs(clogits - logits).max()))


def main():
    rng = np.random.default_rng(20251122)
    W = make_weights(TINY, rng)
    prompt = [int(t) for t in rng.integers(2, TINY["vocab_size"], PROMPT_LEN)]
    for fmt in ("fp8", "bf16"):
        run(fmt, W, TINY, prompt)


if __name__ == "__main__":
    main()
