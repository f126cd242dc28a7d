"""dsagent's CPU engine side by side with Hugging Face transformers' `deepseek_v32` on one checkpoint:
prefill and decode speed, and whether the two pick the same greedy tokens.

  scripts/python-env.sh hf
  .venv/bin/python scripts/hf_side_by_side.py --dsagent build/cli/dsagent --model /tmp/bench-s \\
      [--prompt-tokens 512] [--decode 32] [--threads 2]

Both run the same raw prompt (dsagent tokenises it; HF gets those ids). Speed, dsagent: `bench`
with a prefill of the prompt's length and decode steps at that position. transformers: the best of
two forwards over the prompt (prefill), then greedy decoding with its cache (its generate() time
less one prefill, over --decode steps), in bfloat16 (transformers dequantises an FP8 checkpoint to
bf16 on load when there is no GPU), with torch's CPU kernels on the same threads.

Agreement: the log-probabilities dsagent reports for its greedy tokens and the 5 most likely ids
(`generate --logprobs 5`) against transformers' in float32, teacher-forced on dsagent's tokens.
transformers leaves activations in bf16/fp32 where DeepSeek's reference (and dsagent) quantise
every FP8 linear's input to FP8 (1x128 blocks); on a random-weight checkpoint like bench-s, whose
router and top-k choices are full of near-ties, that alone moves the log-probabilities a lot. So two
more rows calibrate: transformers with FP8 activations emulated (hooks on its linears and experts)
against itself in float32, and transformers in bfloat16 against float32 (rounding alone). dsagent
should sit where the FP8 emulation sits; a bug would stand far outside.
"""
import argparse
import json
import os
import subprocess
import time

import torch
import torch.nn as nn
from transformers import AutoConfig, DeepseekV32ForCausalLM
from transformers.models.deepseek_v32 import modeling_deepseek_v32 as hf_v32

# The linears whose weights are FP8 in DeepSeek's checkpoints (their inputs are quantised too).
FP8_LINEARS = {"q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj", "wq_b", "wk",
               "gate_proj", "up_proj", "down_proj"}


def fp8_activations(x, block=128):
    """act_quant's round trip: per 1x128 block, scale 2^ceil(log2(amax / 448)), e4m3."""
    shp = x.shape
    xb = x.float().reshape(*shp[:-1], shp[-1] // block, block)
    scale = torch.exp2(torch.ceil(torch.log2(xb.abs().amax(-1, keepdim=True).clamp_min(1e-4) / 448.0)))
    return ((xb / scale).clamp(-448, 448).to(torch.float8_e4m3fn).float() * scale).reshape(shp)


def experts_fp8(self, hidden_states, top_k_index, top_k_weights):
    """transformers' expert loop with each expert GEMM's input quantised as above."""
    out = torch.zeros_like(hidden_states)
    for e in range(self.num_experts):
        tok, slot = torch.where(top_k_index == e)
        if tok.numel():
            gate, up = nn.functional.linear(fp8_activations(hidden_states[tok]), self.gate_up_proj[e]).chunk(2, -1)
            y = nn.functional.linear(fp8_activations(self.act_fn(gate) * up), self.down_proj[e])
            out.index_add_(0, tok, y * top_k_weights[tok, slot, None])
    return out


def emulate_fp8_activations(model):
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and name.split(".")[-1] in FP8_LINEARS:
            mod.register_forward_pre_hook(lambda _m, args: (fp8_activations(args[0]),))
    hf_v32.DeepseekV32Experts.forward = experts_fp8


def ids_with_tokens(model_dir, vocab_size):
    """Which ids the tokenizer has a token for: dsagent never samples the others (their logits are
    masked), so the comparison leaves them out of transformers' distribution too."""
    tok = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    ids = set(tok["model"]["vocab"].values()) | {t["id"] for t in tok.get("added_tokens", [])}
    keep = torch.zeros(vocab_size, dtype=torch.bool)
    keep[[i for i in ids if i < vocab_size]] = True
    return keep


def dsagent_bench(exe, model, position, tokens, threads):
    cmd = [exe, "bench", "--model", model, "--positions", str(position), "--tokens", str(tokens),
           "--prefill-tokens", str(position), "--json"] + (["--threads", str(threads)] if threads else [])
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def dsagent_generate(exe, model, prompt, new_tokens, threads):
    cmd = [exe, "generate", "--model", model, "--prompt", prompt, "--raw", "--json", "--temperature", "0",
           "--max-tokens", str(new_tokens), "--logprobs", "5"]
    env = {**os.environ, "DSA_THREADS": str(threads)} if threads else None
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsagent", default="build/cli/dsagent")
    ap.add_argument("--model", required=True, help="a model directory (config.json, safetensors, tokenizer.json)")
    ap.add_argument("--prompt-tokens", type=int, default=512, help="about this many prompt tokens")
    ap.add_argument("--decode", type=int, default=32, help="greedy tokens to generate")
    ap.add_argument("--threads", type=int, default=0, help="threads for both (0: all cores)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    words = ("the model reads a long document about rivers mountains and companies then answers "
             "questions with tools search open find and a calculator ").split()
    prompt = " ".join(words[i % len(words)] + str(i % 7) for i in range(a.prompt_tokens // 2))

    d_all = dsagent_generate(a.dsagent, a.model, prompt, 1 + a.decode, a.threads)
    ids = d_all["prompt_ids"]
    gen = d_all["ids"]
    n = len(ids)
    speed = dsagent_bench(a.dsagent, a.model, n, a.decode, a.threads)
    ds_prefill = next(r for r in speed["runs"] if r["phase"] == "prefill")["tokens_per_s"]
    ds_decode = next(r for r in speed["runs"] if r["phase"] == "decode")["tokens_per_s"]

    cfg = AutoConfig.from_pretrained(a.model)
    t0 = time.time()
    hf = DeepseekV32ForCausalLM.from_pretrained(a.model, config=cfg, dtype=torch.bfloat16,
                                                attn_implementation="eager").eval()
    load_s = time.time() - t0
    x = torch.tensor([ids])
    forced = torch.tensor([ids + gen[:-1]])
    keep = ids_with_tokens(a.model, cfg.vocab_size)

    def logprobs(logits):
        return logits[0, n - 1:].float().masked_fill(~keep, float("-inf")).log_softmax(-1)

    def timed(f):
        t0 = time.time()
        f()
        return time.time() - t0

    with torch.no_grad():
        hf(x, use_cache=False)  # warm-up
        hf_prefill = min(timed(lambda: hf(x, use_cache=False)) for _ in range(2))
        hf_all = timed(lambda: hf.generate(x, max_new_tokens=1 + a.decode, min_new_tokens=1 + a.decode,
                                           do_sample=False))
        lp_bf16 = logprobs(hf(forced, use_cache=False).logits)
        lp_fp32 = logprobs(hf.float()(forced, use_cache=False).logits)
        emulate_fp8_activations(hf)
        lp_fp8 = logprobs(hf(forced, use_cache=False).logits)

    def compare(steps, reference):
        """steps: per position (chosen id, [(id, logprob)] top ids) -> (argmax agreements, mean over
        positions of the largest |logprob difference| on the listed ids)."""
        same, worst = 0, []
        for (tok, top), row in zip(steps, reference):
            same += int(int(row.argmax()) == tok)
            worst.append(max(abs(lp - float(row[i])) for i, lp in top))
        return same, sum(worst) / len(worst)

    def top5(rows):
        tops = [r.topk(5) for r in rows]
        return [(int(t.indices[0]), list(zip(t.indices.tolist(), t.values.tolist()))) for t in tops]

    ds_steps = [(tok, [(i, lp) for i, lp in st["top"]]) for tok, st in zip(gen, d_all["logprobs"])]
    rows = [("dsagent", compare(ds_steps, lp_fp32), ""),
            ("transformers, FP8 act.", compare(top5(lp_fp8), lp_fp32), "  (FP8 activations alone)"),
            ("transformers bfloat16", compare(top5(lp_bf16), lp_fp32), "  (bf16 rounding alone)")]

    h_decode = (hf_all - hf_prefill) / a.decode
    print(f"model {a.model}, prompt {n} tokens, {a.decode} greedy decode steps, "
          f"threads {a.threads or torch.get_num_threads()}")
    print(f"{'':24}{'dsagent':>12}{'transformers':>14}{'ratio':>8}")
    print(f"{'prefill tokens/s':24}{ds_prefill:12.1f}{n / hf_prefill:14.1f}{ds_prefill * hf_prefill / n:8.2f}x")
    print(f"{'decode tokens/s':24}{ds_decode:12.2f}{1 / h_decode:14.2f}{ds_decode * h_decode:8.2f}x")
    print(f"(transformers load {load_s:.1f} s, bf16 weights; its generate() includes its own prefill)")
    print(f"agreement with transformers in float32, teacher-forced on dsagent's {len(gen)} tokens:")
    for name, (same, diff), note in rows:
        print(f"  {name:24} argmax equal at {same}/{len(gen)} steps, mean max |logprob diff| on its top 5 "
              f"{diff:.3f}{note}")

if __name__ == "__main__":
    main()
