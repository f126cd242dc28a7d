"""Checks the NumPy reference (reference_model.py, the engine's golden source) against Hugging Face
transformers' `deepseek_v32`, an independent implementation, on the tiny BF16 fixture checkpoint.

  scripts/python-env.sh hf && .venv/bin/python tests/golden/hf_compare.py

Reads tests/fixtures/engine/tiny-bf16/ and golden_bf16.json/.bin (make_engine_golden.py); exits 1
when the two disagree beyond what their documented differences explain. Writes golden_hf_bf16.json
and .bin: HF's own whole prefill (pinned to the reference's top-k sets), which the engine's C++ test
compares against (tests/unit/engine/test_model_golden.cpp). HF runs in float32 on the
bf16 weights (every weight converts exactly) and without a cache, so only its math is under test.

The two differ by design (tests/fixtures/engine/README.md):
  1. DeepSeek's reference rounds to bf16 after every linear, norm, RoPE and attention output; HF in
     float32 does not.
  2. The reference rounds the MLA latent through FP8 (per-128 block, power-of-two scale) before
     caching; HF does not. The script can apply the same round trip inside HF (`latent_fp8`), which
     isolates this difference.
  3. The reference's indexer rotates q and k by Hadamard-128 and quantises them to FP8; HF skips both
     (the rotation cancels in q.k, the FP8 rounding does not). Top-k sets then differ where two keys
     score nearly the same.
Discrete choices amplify small differences: one swapped key in a top-k set, or one swapped expert
in the router, changes that token's output by far more than any rounding. So the hidden states are
compared layer by layer, each HF layer fed the reference's input for it and pinned to the
reference's top-k sets, and tokens whose routing is a near-tie are reported apart.
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoConfig, DeepseekV32ForCausalLM
from transformers.models.deepseek_v32.modeling_deepseek_v32 import apply_rotary_pos_emb

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "engine")

# Bounds, justified by the differences above (measured values are printed next to them).
TOPK_NEAR_TIE = 0.05    # a swapped key scores within 5% of the row's best score of the k-th best:
                        # FP8 q/k carry 3 mantissa bits
ROUTER_NEAR_TIE = 0.02  # a token whose chosen and best unchosen expert (or group) differ by less
HIDDEN_REL = 0.03       # per layer, rows without a routing near-tie, latent FP8 applied in HF: the
                        # reference's bf16 roundings (2^-9 each, about ten per layer), plus latent
                        # elements whose FP8 rounding goes the other way (one e4m3 step, 2^-3 of
                        # that element) because the two latents straddle a rounding boundary


def load_reference():
    meta = json.load(open(os.path.join(FIX, "golden_bf16.json")))
    data = np.fromfile(os.path.join(FIX, meta["bin"]), dtype="<f4")

    def array(name):
        a = meta["arrays"][name]
        return data[a["offset"]:a["offset"] + int(np.prod(a["shape"]))].reshape(a["shape"])
    return meta, array


def hadamard(n):
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
    return h / n ** 0.5


def index_scores(ix, hidden_states, q_resid, cos, sin, fp8=False):
    """HF's indexer score matrix [S, S] for one sequence (its forward returns only the indices).
    fp8: rotate q and k by Hadamard and round them through FP8 as DeepSeek's reference does."""
    s = hidden_states.shape[1]
    q = ix.wq_b(q_resid).view(1, s, ix.n_heads, ix.head_dim)
    q_rot, q_pass = torch.split(q, [ix.qk_rope_head_dim, ix.head_dim - ix.qk_rope_head_dim], dim=-1)
    k = ix.k_norm(ix.wk(hidden_states)).unsqueeze(2)
    k_rot, k_pass = torch.split(k, [ix.qk_rope_head_dim, ix.head_dim - ix.qk_rope_head_dim], dim=-1)
    q_rot, k_rot = apply_rotary_pos_emb(q_rot, k_rot, cos, sin, unsqueeze_dim=2)
    q, k = torch.cat([q_rot, q_pass], -1), torch.cat([k_rot, k_pass], -1).squeeze(2)
    if fp8:
        rot, block = hadamard(ix.head_dim), min(128, ix.head_dim)
        q, k = fp8_roundtrip(q @ rot, block, bf16=False), fp8_roundtrip(k @ rot, block, bf16=False)
    sc = torch.relu(torch.matmul(q, k.transpose(-1, -2).unsqueeze(1)) * ix.softmax_scale)
    w = ix.weights_proj(hidden_states) * (ix.n_heads ** -0.5)
    out = torch.matmul(w.unsqueeze(-2), sc).squeeze(-2)[0]
    return out.masked_fill(~torch.ones(s, s, dtype=torch.bool).tril(), float("-inf"))


def row_topk(row, k):
    """One query's scores over its valid keys -> its top-k positions, sorted (ties to the lower one)."""
    return sorted(sorted(range(len(row)), key=lambda p: (-float(row[p]), p))[:k])


def swapped_keys(scores, ref_sets, k):
    """Keys in the reference's top-k sets that these scores do not select -> (count, the largest gap
    between such a key's score and the k-th selected one, relative to the row's best score)."""
    swaps, worst = 0, 0.0
    for t, theirs in enumerate(ref_sets):
        row = scores[t, :t + 1]
        mine = set(row_topk(row, k))
        kth, scale = min(float(row[p]) for p in mine), float(np.abs(row).max())
        for p in set(theirs) - mine:
            swaps += 1
            worst = max(worst, abs(float(row[p]) - kth) / scale)
    return swaps, worst


def fp8_roundtrip(x, block=128, bf16=True):
    """The reference's FP8 round trip: per block, scale 2^ceil(log2(amax / 448)), e4m3 (then bf16)."""
    shp = x.shape
    xb = x.reshape(*shp[:-1], shp[-1] // block, block)
    amax = xb.abs().amax(-1, keepdim=True).clamp_min(1e-4)
    scale = torch.exp2(torch.ceil(torch.log2(amax / 448.0)))
    q = (xb / scale).clamp(-448, 448).to(torch.float8_e4m3fn).float() * scale
    q = q.reshape(shp)
    return q.to(torch.bfloat16).float() if bf16 else q


class Instrument:
    """Hooks into HF's modules: pins or records the indexer's selections, records router margins,
    optionally applies the latent FP8 round trip."""

    def __init__(self, model, cfg):
        self.pin, self.latent_fp8, self.index_fp8 = None, False, False
        self.scores, self.margins, self.hidden = {}, {}, {}
        self.k = cfg.index_topk
        for i, layer in enumerate(model.model.layers):
            layer.register_forward_hook(self._layer(i))
            attn = layer.self_attn
            attn.indexer.forward = self._indexer(i, attn.indexer)
            attn.kv_a_layernorm.register_forward_hook(self._latent)
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.register_forward_hook(self._router(i, layer.mlp.gate, cfg))

    def _indexer(self, i, ix):
        def forward(hidden_states, q_resid, position_embeddings, attention_mask, *_a, **_kw):
            with torch.no_grad():
                sc = index_scores(ix, hidden_states, q_resid, *position_embeddings, fp8=self.index_fp8)
            self.scores[i] = sc.numpy()
            s = sc.shape[0]
            sets = self.pin[i] if self.pin is not None else [row_topk(sc[t, :t + 1], self.k) for t in range(s)]
            # HF scatters the indices into a mask; pad short rows with their own last index.
            k = min(self.k, s)
            idx = torch.tensor([(list(r) + [r[-1]] * k)[:k] for r in sets], dtype=torch.int32)
            return idx[None]
        return forward

    def _layer(self, i):
        def hook(_module, _args, out):
            self.hidden[i] = (out[0] if isinstance(out, tuple) else out)[0].detach().numpy()
        return hook

    def _latent(self, _module, _args, out):
        return fp8_roundtrip(out) if self.latent_fp8 else out

    def _router(self, i, gate, cfg):
        E, G, TG, K = cfg.n_routed_experts, cfg.n_group, cfg.topk_group, cfg.num_experts_per_tok

        def hook(_module, args, _out):
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            sb = torch.sigmoid(x @ gate.weight.float().T) + gate.e_score_correction_bias
            gs = sb.view(-1, G, E // G).topk(2, -1).values.sum(-1).sort(-1, descending=True).values
            group_margin = gs[:, TG - 1] - gs[:, TG]
            keep = torch.zeros_like(gs).scatter_(1, (sb.view(-1, G, E // G).topk(2, -1).values.sum(-1))
                                                 .topk(TG, -1).indices, 1.0)
            masked = sb.masked_fill(keep.repeat_interleave(E // G, 1) == 0, float("-inf")).sort(-1, descending=True)
            expert_margin = masked.values[:, K - 1] - masked.values[:, K]
            self.margins[i] = torch.minimum(group_margin, expert_margin).detach().numpy()
        return hook


def write_hf_golden(meta, logits, hidden, margins):
    """tests/fixtures/engine/golden_hf_bf16.json + .bin: HF's own prefill (float32, pinned to the
    reference's top-k sets, no FP8 step) for the engine's test against an independent implementation."""
    arrays, blob, at = {}, [], 0
    for name, a in [("prefill_logits", logits)] + [(f"hidden.{i}", h) for i, h in enumerate(hidden)]:
        a = np.ascontiguousarray(a, dtype="<f4")
        arrays[name] = {"offset": at, "shape": list(a.shape)}
        blob.append(a.reshape(-1))
        at += a.size
    near_tie = {str(i): [int(t) for t in np.nonzero(m < ROUTER_NEAR_TIE)[0]] for i, m in margins.items()}
    out = {"checkpoint": "tiny-bf16", "source": "transformers DeepseekV32ForCausalLM (5.25.0), float32, no cache, "
           "top-k pinned to golden_bf16's sets", "prompt": meta["prompt"], "topk": meta["topk"],
           "router_near_ties": near_tie, "arrays": arrays, "bin": "golden_hf_bf16.bin"}
    np.concatenate(blob).tofile(os.path.join(FIX, "golden_hf_bf16.bin"))
    with open(os.path.join(FIX, "golden_hf_bf16.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("  wrote tests/fixtures/engine/golden_hf_bf16.json and .bin")


def main():
    meta, ref = load_reference()
    path = os.path.join(FIX, "tiny-bf16")
    cfg = AutoConfig.from_pretrained(path)
    model = DeepseekV32ForCausalLM.from_pretrained(path, config=cfg, dtype=torch.float32,
                                                   attn_implementation="eager").eval()
    ins = Instrument(model, cfg)
    L, k, prompt = cfg.num_hidden_layers, cfg.index_topk, meta["prompt"]
    S = len(prompt)
    pos = torch.arange(S)[None]
    mask = torch.zeros(S, S).masked_fill(~torch.ones(S, S, dtype=torch.bool).tril(), float("-inf"))[None, None]
    ok = True
    print(f"transformers DeepseekV32ForCausalLM vs the NumPy reference: tiny-bf16, {S}-token prompt, "
          f"index_topk {k}, {L} layers")

    # 1. Layer by layer: HF's layer L on the reference's input to it.
    with torch.no_grad():
        emb = model.model.embed_tokens(torch.tensor([prompt]))
        cos_sin = model.model.rotary_emb(emb, position_ids=pos)
        for layer in range(L):
            x = emb if layer == 0 else torch.tensor(ref(f"hidden.{layer - 1}"))[None]
            want = ref(f"hidden.{layer}")
            # (a) HF's own selections against the reference's, plain and with FP8 q/k emulated
            ins.pin = None
            found = {}
            for fp8 in (False, True):
                ins.index_fp8 = fp8
                model.model.layers[layer](x, attention_mask=mask, position_embeddings=cos_sin, position_ids=pos)
                found[fp8] = swapped_keys(ins.scores[layer], meta["topk"][layer], k)
            ins.index_fp8 = False
            (swaps, worst_gap), (swaps_fp8, _) = found[False], found[True]
            good = worst_gap <= TOPK_NEAR_TIE
            ok &= good
            print(f"  layer {layer} indexer: {swaps} keys swapped over {S} top-k sets, each scoring within "
                  f"{100 * worst_gap:.2f}% of the row's best from the k-th (bound {100 * TOPK_NEAR_TIE:.0f}%); "
                  f"{swaps_fp8} with the reference's Hadamard + FP8 q/k applied in HF" + ("" if good else "  FAIL"))
            # (b) pinned to the reference's selections, without and with the latent FP8 round trip
            ins.pin = meta["topk"]
            rel = {}
            for fp8 in (False, True):
                ins.latent_fp8 = fp8
                got = model.model.layers[layer](x, attention_mask=mask, position_embeddings=cos_sin,
                                                position_ids=pos)[0].numpy()
                rel[fp8] = np.abs(got - want).max(1) / np.abs(want).max()
            ins.latent_fp8 = False
            tie = ins.margins.get(layer, np.full(S, np.inf)) < ROUTER_NEAR_TIE
            clean = rel[True][~tie].max()
            good = clean <= HIDDEN_REL
            ok &= good
            print(f"  layer {layer} hidden (max |diff| / max |ref|): {rel[False].max():.4f} plain, "
                  f"{rel[True].max():.4f} with the latent FP8 round trip; {clean:.4f} over the "
                  f"{int((~tie).sum())} tokens without a routing near-tie (bound {HIDDEN_REL})"
                  + (f"; {int(tie.sum())} near-tie tokens, worst {rel[True][tie].max():.4f}" if tie.any() else "")
                  + ("" if good else "  FAIL"))

    # 2. The whole prefill, HF pinned to the reference's selections: with the latent FP8 round trip
    # (how close the two come), and plain HF (its own math only), which becomes the HF golden file.
    want = ref("prefill_logits")
    top = np.argsort(-want)[:2]
    ins.pin = meta["topk"]
    for fp8 in (True, False):
        ins.latent_fp8 = fp8
        with torch.no_grad():
            logits = model(torch.tensor([prompt]), use_cache=False).logits[0, -1].numpy()
        print(f"  prefill logits, whole model, pinned{', latent FP8' if fp8 else ', plain'}: max |diff| "
              f"{np.abs(logits - want).max():.4f} (max |logit| {np.abs(want).max():.2f}); argmax HF "
              f"{int(logits.argmax())}, reference {int(top[0])} (reference margin to the second "
              f"{float(want[top[0]] - want[top[1]]):.4f})")
    write_hf_golden(meta, logits, [ins.hidden[layer] for layer in range(L)], ins.margins)
    print("agree" if ok else "DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
