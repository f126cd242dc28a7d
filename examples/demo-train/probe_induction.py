"""How fast does a model learn to copy? A probe on pure induction data, for choosing the demo model's
shape and training budget.

  python probe_induction.py --arch mla --mlp 0        # the demo model's layers (model.py), MLP skipped
  python probe_induction.py --arch mha --mlp 1        # a plain pre-norm transformer, for comparison
  python probe_induction.py --arch mla --mlp 1 --offset 40   # copying at a fixed distance instead

Each row is random tokens (vocab --vocab) in which a span of 10-30 tokens appears twice at random
places; the loss is on the second copy after its first token (only an induction circuit predicts
it: an earlier head marks each token with its predecessor, a later one finds the earlier occurrence
of the current token and copies what followed). Chance is ln(vocab). Prints the loss (EMA) every
50 steps and the step and seconds at which it falls below --target.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import model as M


def induction_batch(rows, length, vocab, g, offset=0):
    x = torch.randint(0, vocab, (rows, length), generator=g)
    mask = torch.zeros(rows, length, dtype=torch.bool)
    src = torch.full((rows, length), -1, dtype=torch.long)  # where an induction head should look
    for r in range(rows):
        n = int(torch.randint(10, 31, (1,), generator=g))
        if offset:  # the copy starts exactly `offset` tokens after the original
            a = int(torch.randint(0, length - offset - n + 1, (1,), generator=g))
            b = a + offset
        else:
            a = int(torch.randint(0, length - 2 * n, (1,), generator=g))
            b = int(torch.randint(a + n, length - n + 1, (1,), generator=g))
        x[r, b:b + n] = x[r, a:a + n]
        mask[r, b + 1:b + n] = True
        src[r, b:b + n - 1] = torch.arange(a + 1, a + n)
    return x, mask, src


class MhaBlock(nn.Module):
    """Pre-norm multi-head attention with interleaved RoPE on the whole head, optional GELU MLP."""

    def __init__(self, d, heads, mlp):
        super().__init__()
        self.h = heads
        self.n1, self.qkv, self.o = nn.RMSNorm(d), nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.mlp = nn.Sequential(nn.RMSNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)) if mlp else None

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, self.h, d // self.h).unbind(2)
        freq = 1.0 / (10000 ** (torch.arange(0, d // self.h, 2).float() / (d // self.h)))
        ang = torch.arange(t).float()[:, None] * freq
        q, k = (M.rope(z, ang.cos(), ang.sin(), True) for z in (q.transpose(0, 1), k.transpose(0, 1)))
        q, k = q.transpose(0, 1).transpose(1, 2), k.transpose(0, 1).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(x) if self.mlp is not None else x


class Mha(nn.Module):
    def __init__(self, vocab, d, heads, layers, mlp):
        super().__init__()
        self.e = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(MhaBlock(d, heads, mlp) for _ in range(layers))
        self.n, self.head = nn.RMSNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, x):
        x = self.e(x)
        for b in self.blocks:
            x = b(x)
        return self.head(self.n(x))


def mla_model(a):
    cfg = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")))
    cfg.update(vocab_size=a.vocab, num_hidden_layers=a.layers, hidden_size=a.d, num_attention_heads=a.heads,
               intermediate_size=3 * a.d, moe_intermediate_size=a.d, q_lora_rank=a.d // 2, kv_lora_rank=a.d // 2)
    if not a.mlp:
        M.Layer.forward = lambda self, x, *args: x + self.self_attn(self.input_layernorm(x), *args)
    net = M.Model(cfg)
    empty = torch.zeros(0, dtype=torch.long)
    return net, lambda x: net(empty, x, "dense")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=("mla", "mha"), default="mla")
    ap.add_argument("--mlp", type=int, default=0, help="1: keep the MLP/MoE of each layer")
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--target", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--offset", type=int, default=0,
                    help="copy at this fixed distance (> 30) instead of anywhere: positional copying, no induction")
    ap.add_argument("--supervise", type=int, default=0,
                    help="1: supervise a previous-token head in layer 0 and an induction head in layer 1 (mla only)")
    a = ap.parse_args()
    if a.supervise and a.arch != "mla":
        ap.error("--supervise needs --arch mla (the heads are read from model.py's attention)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.arch == "mla":
        net, run = mla_model(a)
        for layer in net.layers[:2]:
            layer.self_attn.record = bool(a.supervise)
    else:
        net = Mha(a.vocab, a.d, a.heads, a.layers, a.mlp)
        run = net
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    t0, ema = time.time(), None
    print(f"{a.arch} mlp={a.mlp} d={a.d} layers={a.layers} vocab={a.vocab} chance {math.log(a.vocab):.2f}")
    for step in range(a.steps):
        x, mask, src = induction_batch(a.rows, a.length, a.vocab, g, a.offset)
        logits = run(x)[:, :-1]
        m = mask[:, 1:]
        loss = F.cross_entropy(logits[m], x[:, 1:][m])
        if a.supervise:
            loss = loss + M.attention_supervision(net, src)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        if step % 50 == 0:
            print(f"step {step} loss {ema:.3f} {time.time() - t0:.0f}s", flush=True)
        if ema < a.target:
            print(f"learned at step {step}, {time.time() - t0:.0f}s")
            return
    print(f"not learned in {a.steps} steps ({time.time() - t0:.0f}s), loss {ema:.3f}")


if __name__ == "__main__":
    main()
