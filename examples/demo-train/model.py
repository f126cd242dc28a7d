"""The DeepSeek-V3.2 architecture in PyTorch for training the demo model (fp32).

The math follows model-spec (and tests/golden/reference_model.py, the engine's NumPy reference):
MLA with low-rank q and kv, interleaved YaRN RoPE, the lightning indexer (its RoPE is
rotate-half on the first dims; the engine's Hadamard rotation and FP8 rounding are left out: the
rotation preserves the dot products and the rounding is an inference-time approximation), top-k
sparse attention, group-limited sigmoid MoE with a shared expert and a bias used only for selection.

Training layout: every sequence starts with the same prefix (system prompt and tool definitions).
The prefix is computed once per batch and its keys are shared by all samples, which attend to
[prefix keys, their own keys] causally.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def yarn_inv_freq(cfg):
    dim, rs = cfg["qk_rope_head_dim"], cfg["rope_scaling"]
    base, factor, orig = cfg["rope_theta"], rs["factor"], rs["original_max_position_embeddings"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))

    def corr(n_rot):
        return dim * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(corr(rs["beta_fast"])), 0)
    high = min(math.ceil(corr(rs["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    return freqs / factor * ramp + freqs * (1 - ramp)


def rope(x, cos, sin, interleaved):
    """x [N, ..., d]; cos/sin [N, d/2] broadcast over the middle dims."""
    while cos.dim() < x.dim():
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(n)), eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


def linear(i, o):
    return nn.Linear(i, o, bias=False)


class MLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = linear(d, inter), linear(d, inter), linear(inter, d)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, E = c["hidden_size"], c["n_routed_experts"]
        self.c = c
        self.gate = nn.Linear(d, E, bias=False)
        self.register_buffer("e_score_correction_bias", torch.zeros(E))
        self.experts = nn.ModuleList(MLP(d, c["moe_intermediate_size"]) for _ in range(E))
        self.shared_experts = MLP(d, c["moe_intermediate_size"] * c["n_shared_experts"])
        self.load = None  # tokens per expert in the last forward, for the bias update

    def forward(self, x):
        c = self.c
        E, G, TG, K = c["n_routed_experts"], c["n_group"], c["topk_group"], c["num_experts_per_tok"]
        s = torch.sigmoid(self.gate(x))
        with torch.no_grad():
            sb = s + self.e_score_correction_bias
            gs = sb.view(-1, G, E // G).topk(2, dim=-1).values.sum(-1)
            keep = torch.zeros_like(gs).scatter_(1, gs.topk(TG, dim=-1).indices, 1.0)
            masked = sb.masked_fill(keep.repeat_interleave(E // G, dim=1) == 0, float("-inf"))
            idx = masked.topk(K, dim=-1).indices
        w = s.gather(1, idx)
        w = w / w.sum(-1, keepdim=True) * c["routed_scaling_factor"]
        y = self.shared_experts(x)
        load = torch.zeros(E, device=x.device)
        for e in range(E):
            rows, slot = (idx == e).nonzero(as_tuple=True)
            load[e] = rows.numel()
            if rows.numel():
                y = y.index_add(0, rows, self.experts[e](x[rows]) * w[rows, slot, None])
        self.load = load
        return y

    @torch.no_grad()
    def update_bias(self, rate):
        """Auxiliary-loss-free balancing: lower the bias of overloaded experts, raise the others."""
        if self.load is not None:
            self.e_score_correction_bias -= rate * torch.sign(self.load - self.load.mean())


class Indexer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.nh, self.hd, self.rd = c["hidden_size"], c["index_n_heads"], c["index_head_dim"], c["qk_rope_head_dim"]
        self.wq_b = linear(c["q_lora_rank"], self.nh * self.hd)
        self.wk = linear(d, self.hd)
        self.k_norm = nn.LayerNorm(self.hd, eps=c["rms_norm_eps"])
        self.weights_proj = linear(d, self.nh)

    def forward(self, x, qr, cos, sin):
        """Per-token pieces: q [N, nh, hd], k [N, hd], w [N, nh] (scales folded in)."""
        N = x.shape[0]
        q = self.wq_b(qr).view(N, self.nh, self.hd)
        q = torch.cat((rope(q[..., : self.rd], cos, sin, False), q[..., self.rd:]), -1)
        k = self.k_norm(self.wk(x))
        k = torch.cat((rope(k[:, : self.rd], cos, sin, False), k[:, self.rd:]), -1)
        w = self.weights_proj(x) * (self.nh ** -0.5) * (self.hd ** -0.5)
        return q, k, w


def index_scores(q, k, w):
    """q [B, T, nh, hd], k [B, S, hd], w [B, T, nh] -> [B, T, S] = sum_h w * relu(q.k)."""
    kt = k.transpose(1, 2)
    out = None
    for h in range(q.shape[2]):
        part = F.relu(torch.bmm(q[:, :, h], kt)) * w[:, :, h, None]
        out = part if out is None else out + part
    return out


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.H = c["hidden_size"], c["num_attention_heads"]
        self.dn, self.dr, self.dv, self.kvr = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
        self.q_a_proj = linear(d, c["q_lora_rank"])
        self.q_a_layernorm = RMSNorm(c["q_lora_rank"], c["rms_norm_eps"])
        self.q_b_proj = linear(c["q_lora_rank"], self.H * (self.dn + self.dr))
        self.kv_a_proj_with_mqa = linear(d, self.kvr + self.dr)
        self.kv_a_layernorm = RMSNorm(self.kvr, c["rms_norm_eps"])
        self.kv_b_proj = linear(self.kvr, self.H * (self.dn + self.dv))
        self.o_proj = linear(self.H * self.dv, d)
        self.indexer = Indexer(c)
        rs = c["rope_scaling"]
        mscale = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0
        self.scale = (self.dn + self.dr) ** -0.5 * mscale * mscale
        self.topk = c["index_topk"]
        self.record = False  # keep the sample queries' attention probabilities in self.probs
        self.probs = None

    def forward(self, x, P, B, T, cos, sin, own, mode, stats):
        """x [P + B*T, d]: the prefix rows, then B rows of T tokens; own [B, T, T]: which tokens of its
        row each token may attend to (causal within the sample packed there).
        mode: 'dense' or 'sparse'. stats collects the indexer KL term."""
        N, H = x.shape[0], self.H
        qr = self.q_a_layernorm(self.q_a_proj(x))
        q = self.q_b_proj(qr).view(N, H, self.dn + self.dr)
        q = torch.cat((q[..., : self.dn], rope(q[..., self.dn:], cos, sin, True)), -1)
        kv = self.kv_a_proj_with_mqa(x)
        c_kv = self.kv_a_layernorm(kv[:, : self.kvr])
        k_pe = rope(kv[:, self.kvr:], cos, sin, True)
        kvb = self.kv_b_proj(c_kv).view(N, H, self.dn + self.dv)
        k = torch.cat((kvb[..., : self.dn], k_pe[:, None, :].expand(N, H, self.dr)), -1)
        v = kvb[..., self.dn:]
        # The indexer learns only from its KL loss: its inputs are detached from the main graph.
        iq, ik, iw = self.indexer(x.detach(), qr.detach(), cos, sin)

        def split(t):
            return t[:P], t[P:].reshape(B, T, *t.shape[1:])

        (qp, qs), (kp, ks), (vp, vs) = split(q), split(k), split(v)
        (iqp, iqs), (ikp, iks), (iwp, iws) = split(iq), split(ik), split(iw)
        # prefix queries: causal over the prefix
        causal_p = torch.ones(P, P, dtype=torch.bool, device=x.device).tril()
        op, _ = self._attend(qp[None], kp[None], vp[None], causal_p[None], iqp[None], ikp[None], iwp[None], mode, stats)
        # sample queries: all prefix keys, then causal over their own
        kcat = torch.cat((kp[None].expand(B, *kp.shape), ks), 1)
        vcat = torch.cat((vp[None].expand(B, *vp.shape), vs), 1)
        ikcat = torch.cat((ikp[None].expand(B, *ikp.shape), iks), 1)
        allowed = torch.cat((torch.ones(B, T, P, dtype=torch.bool, device=x.device), own), 2)
        os_, probs = self._attend(qs, kcat, vcat, allowed, iqs, ikcat, iws, mode, stats)
        self.probs = probs if self.record else None  # [B, H, T, P + T]
        o = torch.cat((op[0], os_.reshape(B * T, H, self.dv)), 0)
        return self.o_proj(o.reshape(N, H * self.dv))

    def _attend(self, q, k, v, allowed, iq, ik, iw, mode, stats):
        """q [B,T,H,dq], k [B,S,H,dq], v [B,S,H,dv], allowed [B,T,S]; indexer q [B,T,nh,hd], k [B,S,hd], w [B,T,nh].

        mode 'dense': causal attention, the indexer is not run unless stats asks for its KL term;
        mode 'sparse': each query attends to the index_topk keys its indexer scores highest."""
        need_index = mode == "sparse" or stats is not None
        iscore = index_scores(iq, ik, iw) if need_index else None  # [B,T,S]
        mask = allowed
        if mode == "sparse" and allowed.shape[-1] > self.topk:
            sel = iscore.detach().masked_fill(~allowed, float("-inf"))
            top = sel.topk(self.topk, dim=-1).indices
            mask = torch.zeros_like(allowed).scatter_(-1, top, True) & allowed  # rows below topk keep all
        scores = torch.einsum("bthd,bshd->bhts", q, k) * self.scale
        probs = scores.masked_fill(~mask[:, None], float("-inf")).softmax(-1)
        if stats is not None:
            # KL(target || indexer) over the keys attention used; target = head-summed attention, L1-normalised.
            with torch.no_grad():
                target = probs.sum(1)
                target = target / target.sum(-1, keepdim=True)
                log_target = torch.log(target.clamp_min(1e-12))
            logp = iscore.masked_fill(~mask, float("-inf")).log_softmax(-1).masked_fill(~mask, 0)
            kl = (target * (log_target - logp)).sum(-1)
            stats["kl_sum"] = stats.get("kl_sum", 0) + kl.sum()
            stats["kl_n"] = stats.get("kl_n", 0) + kl.numel()
        return torch.einsum("bhts,bshd->bthd", probs, v), probs


def attention_supervision(net, src, prev_ok=None, prev2_ok=None):
    """Loss that trains the heads of an induction circuit directly instead of waiting for them to
    emerge: the first head of layer 0 looks at the previous token (at the positions prev_ok [B, T]
    marks; all but the first when None); with prev2_ok, the second head of layer 0 looks two tokens
    back (the V3 pre-tokenizer makes the space before a number a token of its own, so one token of
    context does not tell the operands apart); the first head of layer 1 looks where src [B, T]
    points (-1: nowhere), which is where the token to predict next was seen before. Needs `record`
    on both layers' attention; their probabilities cover [prefix keys, the row's keys], and src and
    the previous positions index the row's keys. With sparse attention a target key outside the
    indexer's selection is left out: attention cannot reach it, and the indexer's KL loss is what
    must bring it in."""
    p0, p1 = net.layers[0].self_attn.probs, net.layers[1].self_attn.probs
    B, _, T, S = p1.shape
    P = S - T

    def nll(probs, head, where, key):  # mean -log attention of `head` on key(b, i) at the positions `where`
        b, i = where.nonzero(as_tuple=True)
        p = probs[b, head, i, P + key(b, i)]
        p = p[p > 0]  # sparse attention: a key the indexer did not select is the indexer's to bring in
        if not p.numel():
            return probs.new_zeros(())
        return -torch.log(p.clamp_min(1e-9)).mean()

    if prev_ok is None:
        prev_ok = torch.arange(T, device=src.device)[None].expand(B, T) > 0
    loss = nll(p0, 0, prev_ok, lambda b, i: i - 1) + nll(p1, 0, src >= 0, lambda b, i: src[b, i])
    if prev2_ok is not None:
        loss = loss + nll(p0, 1, prev2_ok, lambda b, i: i - 2)
    return loss


class Layer(nn.Module):
    def __init__(self, c, i):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MoE(c) if i >= c["first_k_dense_replace"] else MLP(c["hidden_size"], c["intermediate_size"])

    def forward(self, x, P, B, T, cos, sin, own, mode, stats):
        x = x + self.self_attn(self.input_layernorm(x), P, B, T, cos, sin, own, mode, stats)
        return x + self.mlp(self.post_attention_layernorm(x))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c, i) for i in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.lm_head = linear(c["hidden_size"], c["vocab_size"])
        self.register_buffer("inv_freq", yarn_inv_freq(c), persistent=False)
        for name, p in self.named_parameters():
            if name == "embed_tokens.weight":
                # Unit-scale embeddings: with 0.02 the token's own identity is a few percent of the
                # residual once the first attention layer has written to it, and a later head cannot
                # match on it (the induction heads every copy needs did not form; see probe_induction.py).
                nn.init.normal_(p, std=1.0)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["num_hidden_layers"]) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, prefix, samples, mode="dense", stats=None, seg=None, offs=None):
        """prefix [P] ids, samples [B, T] ids -> logits of the sample rows [B, T, V].

        Several samples may be packed into one row: seg [B, T] numbers them (pads get their own
        number) and offs [B, T] is each token's position within its sample; a token attends to the
        prefix and to the earlier tokens of its own sample. Without seg, a row is one sample."""
        P, (B, T) = prefix.shape[0], samples.shape
        dev = samples.device
        if seg is None:
            seg = torch.zeros(B, T, dtype=torch.long, device=dev)
            offs = torch.arange(T, device=dev).expand(B, T)
        own = (seg[:, :, None] == seg[:, None, :]) & (offs[:, None, :] <= offs[:, :, None])
        ids = torch.cat((prefix, samples.reshape(-1)))
        pos = torch.cat((torch.arange(P, device=dev), P + offs.reshape(-1))).float()
        ang = pos[:, None] * self.inv_freq[None]
        cos, sin = ang.cos(), ang.sin()
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, P, B, T, cos, sin, own, mode, stats)
        return self.lm_head(self.norm(x[P:])).view(B, T, -1)

    def indexer_parameters(self):
        return [p for n, p in self.named_parameters() if ".indexer." in n]

    def main_parameters(self):
        return [p for n, p in self.named_parameters() if ".indexer." not in n]
