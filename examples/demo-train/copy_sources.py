"""Where the copied tokens of a training sample come from: the targets of the attention supervision
that trains the demo model's induction heads (model.attention_supervision). Standard library only.
"""


def copy_sources(ids, mask, cap=8, min_score=3):
    """Where each copied token comes from, for the attention supervision: for a position i whose next
    token is trained, the earlier position s <= i that holds that token inside the longest match
    around it (tokens before s equal to those up to i, tokens from s equal to those from i + 1, each
    side counted up to cap), latest on ties; -1 where the best match is shorter than min_score tokens.
    An operand restated in the reasoning, the tool call and the answer, a name, a path or a value read
    from a tool result all point back to where they were first seen."""
    n, where, src = len(ids), {}, [-1] * len(ids)
    for i in range(n - 1):
        where.setdefault(ids[i], []).append(i)
        if not mask[i + 1]:
            continue
        best, best_s = 0, -1
        for s in where.get(ids[i + 1], ()):
            b = 0
            while b < cap and s - 1 - b >= 0 and ids[s - 1 - b] == ids[i - b]:
                b += 1
            f = 1
            while f < cap and i + 1 + f < n and ids[s + f] == ids[i + 1 + f]:
                f += 1
            if b + f >= best:
                best, best_s = b + f, s
        if best >= min_score:
            src[i] = best_s
    return src
