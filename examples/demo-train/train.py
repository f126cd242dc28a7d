"""Trains the demo model with the DeepSeek-V3.2 recipe at toy scale.

  python train.py --data OUT --tokenizer MODEL_DIR/tokenizer.json --out OUT/ckpt --minutes 6   (the shipped model, on a GPU)
  python train.py ... --steps 2600,1200,1000     (a fixed number of steps per stage)

Stages:
  K. copy rows alone (see copy_batch), for --copy-minutes or --copy-steps, until their loss is low;
  P. dense training on the samples without the shared prefix (--no-prefix-steps);
then A, B and C, each given a share of the time budget (--copy-rows copy rows ride along in the
batches of P, A and C):
  A. dense training: the whole model with causal attention, next-token loss on the tokens the
     assistant writes (the stand-in for the dense checkpoint V3.2 starts from);
  B. dense warm-up: everything frozen but the lightning indexer, which learns by KL divergence
     towards the head-summed dense attention distribution;
  C. sparse training: attention restricted to the index_topk keys the indexer selects; the main
     model learns from the language-model loss, the indexer from its own KL loss over the
     selected keys (its inputs are detached, so it never moves the main model).
Writes stage checkpoints (stage_k.pt, stage_p.pt, stage_a.pt, stage_b.pt, final.pt), latest.pt every
200 steps (continue with --init) and log.csv (step, stage, seconds, lm loss, KL, copy loss).
"""
import argparse
import json
import math
import os
import random
import time

import torch
from tokenizers import Tokenizer

import model as M
from copy_sources import copy_sources


def load_data(path, tok):
    """-> prefix ids (shared by every text), samples [(ids, target mask, copy sources)]."""
    prefix, samples = None, []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            text, cut = r["text"], r["prefix_chars"]
            if prefix is None:
                prefix = tok.encode(text[:cut], add_special_tokens=False).ids
            enc = tok.encode(text[cut:], add_special_tokens=False)
            spans = [(a - cut, b - cut) for a, b in r["spans"]]
            mask = [any(a <= s < b for a, b in spans) for s, _ in enc.offsets]
            samples.append((enc.ids, mask, copy_sources(enc.ids, mask)))
    return torch.tensor(prefix), samples


def batches(samples, rows, row_len, rng):
    """Shuffled batches of `rows` rows, each packed with whole samples up to row_len tokens, so every
    batch mixes the kinds of task (a batch of one kind teaches the model to ignore the question).
    Yields ids [rows, T], targets [rows, T] (-100 where no loss), seg and offs (see Model.forward) and
    src [rows, T], the copy sources in row positions (-1: none)."""
    order = list(range(len(samples)))
    rng.shuffle(order)
    packed, cur, used = [], [], 0
    for i in order:
        n = len(samples[i][0])
        if cur and used + n > row_len:
            packed.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        packed.append(cur)
    for r0 in range(0, len(packed), rows):
        group = packed[r0:r0 + rows]
        T = max(sum(len(samples[i][0]) for i in row) for row in group)
        ids = torch.full((len(group), T), 2, dtype=torch.long)
        tgt = torch.full((len(group), T), -100, dtype=torch.long)
        seg = torch.full((len(group), T), -1, dtype=torch.long)
        offs = torch.zeros((len(group), T), dtype=torch.long)
        src = torch.full((len(group), T), -1, dtype=torch.long)
        for j, row in enumerate(group):
            at = 0
            for k, i in enumerate(row):
                x, m, s = samples[i]
                n = len(x)
                s = torch.tensor(s)
                src[j, at:at + n] = torch.where(s >= 0, s + at, s)
                ids[j, at:at + n] = torch.tensor(x)
                tgt[j, at:at + n - 1] = torch.tensor(x)[1:].masked_fill(~torch.tensor(m[1:]), -100)
                seg[j, at:at + n] = k
                offs[j, at:at + n] = torch.arange(n)
                at += n
            offs[j, at:] = torch.arange(T - at)  # the pad tail: a segment of its own
        yield ids, tgt, seg, offs, src


def copy_batch(rows, content, begin, end, sep, g):
    """Stage K rows: filler, BEGIN x END, filler, SEP x END, with x and the fillers random ordinary tokens;
    the loss is on the second x and its END. Copying a span found after a cue is what the demo tasks
    need most (operands, names, paths and values all come from the question or a tool result), and
    a model learns it far sooner from these short rows than from the agent data alone."""
    seqs = []
    for _ in range(rows):
        n, fa, fb = (int(torch.randint(a, b, (1,), generator=g)) for a, b in ((3, 21), (0, 41), (0, 41)))
        x, f1, f2 = (content[torch.randint(0, len(content), (k,), generator=g)] for k in (n, fa, fb))
        head = torch.cat((f1, torch.tensor([begin]), x, torch.tensor([end]), f2, torch.tensor([sep])))
        seqs.append((torch.cat((head, x, torch.tensor([end]))), len(head)))
    T = max(len(s) for s, _ in seqs)
    ids = torch.full((rows, T), 2, dtype=torch.long)
    tgt = torch.full((rows, T), -100, dtype=torch.long)
    for j, (s, h) in enumerate(seqs):
        ids[j, :len(s)] = s
        tgt[j, h - 1:len(s) - 1] = s[h:]
    return ids, tgt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="directory with texts.jsonl")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "config.json"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=45)
    ap.add_argument("--shares", default="0.5,0.2,0.3", help="time shares of stages A,B,C")
    ap.add_argument("--rows", type=int, default=16, help="packed rows per batch")
    ap.add_argument("--row-len", type=int, default=720, help="tokens per packed row (at least the longest sample)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", default="", help="steps of stages A,B,C instead of the time budget (e.g. 560,100,320)")
    ap.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    ap.add_argument("--init", default="", help="start from this checkpoint (e.g. to continue stage C)")
    ap.add_argument("--stages", default="PABC", help="which stages to run, in order (K: copy rows alone)")
    ap.add_argument("--no-prefix-steps", type=int, default=200,
                    help="stage P: steps of dense training on the samples without the shared prefix")
    ap.add_argument("--copy-minutes", type=float, default=20, help="stage K: minutes on copy rows alone")
    ap.add_argument("--copy-steps", type=int, default=0, help="stage K: steps instead of minutes")
    ap.add_argument("--copy-rows", type=int, default=0,
                    help="copy rows added to every batch of the stages that train the main model")
    ap.add_argument("--attn-sup", type=float, default=1.0,
                    help="weight of the attention supervision of the induction circuit (0: off; see "
                         "model.attention_supervision) in the stages that train the main model")
    ap.add_argument("--prev2", type=int, default=1,
                    help="1: also supervise a head of layer 0 looking two tokens back")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    cfg = json.load(open(a.config))
    tok = Tokenizer.from_file(a.tokenizer)
    prefix, samples = load_data(os.path.join(a.data, "texts.jsonl"), tok)
    n_tgt = sum(sum(m) for _, m, _ in samples)
    n_src = sum(sum(1 for v in s if v >= 0) for _, _, s in samples)
    longest = max(len(x) for x, _, _ in samples)
    print(f"{len(samples)} samples, prefix {len(prefix)} tokens, sample tokens "
          f"{sum(len(x) for x, _, _ in samples)} ({n_tgt} trained, {n_src} with a copy source), longest {longest}",
          flush=True)
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       "cpu" if a.device == "auto" else a.device)
    prefix = prefix.to(dev)
    content = torch.tensor(sorted(i for i in tok.get_vocab(with_added_tokens=False).values() if i > 2))
    marks = [tok.token_to_id(t) for t in ('="', '</', '">')]
    cgen = torch.Generator().manual_seed(a.seed)

    def copy_loss(rows, mode):
        ids, tgt = copy_batch(rows, content, *marks, cgen)
        lg = net(prefix[:0], ids.to(dev), mode)
        return torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.to(dev).reshape(-1),
                                                 ignore_index=-100)

    def copy_only():
        while True:
            yield None, None, None, None, None
    net = M.Model(cfg)
    if a.init:
        net.load_state_dict(torch.load(a.init, map_location="cpu")["state"])
    net = net.to(dev)
    stage_steps = [int(x) for x in a.steps.split(",")] if a.steps else None
    shares = [float(x) for x in a.shares.split(",")]
    log = open(os.path.join(a.out, "log.csv"), "w")
    log.write("step,stage,seconds,lm_loss,kl,copy_loss,attn_sup\n")
    step, t0 = 0, time.time()

    def save(name):
        torch.save({"config": cfg, "state": net.state_dict()}, os.path.join(a.out, name))

    def run_stage(stage, seconds, steps, mode, train_main, train_indexer, lr_main, lr_idx, warmup, pre=prefix,
                  copy_rows=0, source=None, stop_below=0.0):
        nonlocal step
        params = []
        if train_main:
            params.append({"params": net.main_parameters(), "lr": lr_main, "base": lr_main, "weight_decay": 0.1})
        if train_indexer:
            params.append({"params": net.indexer_parameters(), "lr": lr_idx, "base": lr_idx, "weight_decay": 0.0})
        opt = torch.optim.AdamW(params, betas=(0.9, 0.95))
        supervise = train_main and a.attn_sup > 0
        for layer in net.layers[:2]:
            layer.self_attn.record = supervise
        start, k, ema, cema = time.time(), 0, None, None
        while True:
            for ids, tgt, seg, offs, src in source or batches(samples, a.rows, max(a.row_len, longest), rng):
                frac = k / steps if steps else (time.time() - start) / seconds
                if frac >= 1 or (cema is not None and k > 50 and cema < stop_below):
                    return
                for g in opt.param_groups:  # linear warm-up, cosine decay to 10% over the stage's time
                    g["lr"] = g["base"] * min(1.0, (k + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
                stats = {} if train_indexer else None
                cp = copy_loss(copy_rows, mode) if copy_rows else torch.tensor(0.0)
                sup = torch.tensor(0.0)
                if ids is None:  # stage K: copy rows alone
                    lm = kl = torch.tensor(0.0)
                else:
                    seg, offs = seg.to(dev), offs.to(dev)
                    logits = net(pre, ids.to(dev), mode, stats, seg, offs)
                    lm = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                           tgt.to(dev).reshape(-1), ignore_index=-100)
                    kl = stats["kl_sum"] / stats["kl_n"] if stats else torch.tensor(0.0)
                    if supervise:
                        sup = M.attention_supervision(net, src.to(dev), (seg >= 0) & (offs > 0),
                                                      (seg >= 0) & (offs > 1) if a.prev2 else None)
                loss = (lm + cp + a.attn_sup * sup if train_main else 0) + (kl if train_indexer else 0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 1.0)
                opt.step()
                if train_main:
                    for layer in net.layers:
                        if isinstance(layer.mlp, M.MoE):
                            layer.mlp.update_bias(1e-3)
                step, k = step + 1, k + 1
                if step % 200 == 0:
                    save("latest.pt")  # a long run can be stopped and continued with --init
                log.write(f"{step},{stage},{time.time() - t0:.1f},{lm.item():.4f},{kl.item():.4f},{cp.item():.4f},"
                          f"{sup.item():.4f}\n")
                log.flush()
                ema = lm.item() if ema is None else 0.9 * ema + 0.1 * lm.item()
                cema = cp.item() if cema is None else 0.9 * cema + 0.1 * cp.item()
                if k % 20 == 0:
                    print(f"[{stage}] step {step} t={time.time() - t0:.0f}s lm {lm.item():.3f} (ema {ema:.3f}) "
                          f"kl {kl.item():.3f} copy {cp.item():.3f} attn {sup.item():.3f}", flush=True)

    total = a.minutes * 60

    n = stage_steps or [0, 0, 0]
    cr = a.copy_rows
    if "K" in a.stages:
        run_stage("K", a.copy_minutes * 60, a.copy_steps, "dense", True, False, 2e-3, 0.0, 30,
                  copy_rows=32, source=copy_only(), stop_below=0.2)
        save("stage_k.pt")
    if "P" in a.stages:
        run_stage("P", 0, a.no_prefix_steps, "dense", True, False, 2e-3, 0.0, 20, pre=prefix[:0], copy_rows=cr)
        save("stage_p.pt")
    if "A" in a.stages:
        run_stage("A", total * shares[0], n[0], "dense", True, False, 2e-3, 0.0, 50, copy_rows=cr)
        save("stage_a.pt")
    if "B" in a.stages:
        run_stage("B", total * shares[1], n[1], "dense", False, True, 0.0, 1e-3, 10)
        save("stage_b.pt")
    if "C" in a.stages:
        run_stage("C", total * shares[2], n[2], "sparse", True, True, 6e-4, 3e-4, 10, copy_rows=cr)
    save("final.pt")
    print(f"done in {time.time() - t0:.0f}s, {step} steps", flush=True)


if __name__ == "__main__":
    main()
