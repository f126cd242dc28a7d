"""Learns the demo model's byte-level BPE from the rendered training texts.

  python train_tokenizer.py --dsagent build/cli/dsagent --texts OUT/texts.jsonl --out MODEL_DIR

The file keeps the exact DeepSeek-V3.2 tokenizer.json layout that `dsagent make-model` writes (the
V3 pre-tokenizer, ByteLevel decoder, BOS/EOS/pad at ids 0-2, then the 256 byte tokens, then the
merges) with the real added-token block (<think>, </think>, <｜User｜>, <｜Assistant｜>, ｜DSML｜, ...)
placed right after the learned vocabulary so that every id lies below vocab_size.
"""
import argparse
import json
import os
import re

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from template_model import generated_model

ADDED_BLOCK = 815  # added tokens after the BPE vocabulary (engine/tokenizer/make_tokenizer.hpp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsagent", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int, default=2048)
    a = ap.parse_args()

    with generated_model(a.dsagent) as tpl:  # the layout template: a generated model's tokenizer
        template = json.load(open(os.path.join(tpl, "tokenizer.json")))
        for name in ("tokenizer_config.json", "generation_config.json"):
            with open(os.path.join(a.out, name), "w") as f:
                f.write(open(os.path.join(tpl, name)).read())

    specials = [t["content"] for t in template["added_tokens"]]
    split = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))

    def pieces():
        with open(a.texts) as f:
            for line in f:
                for part in split.split(json.loads(line)["text"]):
                    if part:
                        yield part

    bpe_size = a.vocab_size - ADDED_BLOCK
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = Tokenizer.from_str(json.dumps(template)).pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=bpe_size, special_tokens=specials[:3], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(pieces(), trainer=trainer)
    learned = json.loads(tok.to_str())["model"]
    vocab = learned["vocab"]
    if len(vocab) != bpe_size or [vocab[s] for s in specials[:3]] != [0, 1, 2]:
        raise SystemExit(f"BPE training gave {len(vocab)} ids (wanted {bpe_size}) or misplaced specials")

    out = template
    merges = [m if isinstance(m, str) else " ".join(m) for m in learned["merges"]]  # the "a b" form of the real file
    out["model"]["vocab"], out["model"]["merges"] = vocab, merges
    first_added = min(t["id"] for t in out["added_tokens"] if t["id"] > 2)
    for t in out["added_tokens"]:
        if t["id"] > 2:
            t["id"] = t["id"] - first_added + bpe_size
    assert max(t["id"] for t in out["added_tokens"]) < a.vocab_size
    with open(os.path.join(a.out, "tokenizer.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False)
    print(f"tokenizer: {bpe_size} BPE ids ({len(learned['merges'])} merges) + {len(out['added_tokens'])} added tokens")


if __name__ == "__main__":
    main()
