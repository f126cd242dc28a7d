"""Golden numbers of tests/unit/model/test_memory_plan.cpp: the bytes of the DeepSeek-V3.2 checkpoint
(main model, FP8 with 128x128 block scales) and what each of 8 ranks uses under the layout of
engine/model/memory_plan.hpp, computed here from the published config by counting each module's
parameters, independently of the engine's tensor inventory.

  python3 tests/golden/memory_plan_v32.py
"""
H, V, L, DENSE = 7168, 129280, 61, 3
INTER, MOE_INTER, E, SHARED = 18432, 2048, 256, 1
HEADS, Q_LORA, KV_LORA, NOPE, ROPE, VDIM = 128, 1536, 512, 128, 64, 128
IDX_HEADS, IDX_DIM = 64, 128
B = 128


def fp8(out, inp):
    """An FP8 projection: one byte per weight plus an f32 scale per 128x128 block."""
    return out * inp + 4 * (-(-out // B)) * (-(-inp // B))


def mlp(inter):
    return 2 * fp8(inter, H) + fp8(H, inter)


def split_rows(out, inp, n):
    """Rows of an FP8 projection split n ways (each share a whole number of scale blocks)."""
    return fp8(out // n, inp)


def hidden_rows(inp, n):
    """o_proj and the dense down_proj: output rows split n ways where the hidden size splits into
    whole 128-row scale blocks, else whole on every rank."""
    return split_rows(H, inp, n) if H % n == 0 and (H // n) % B == 0 else fp8(H, inp)


def rank_bytes(n, rank):
    # embedding and lm_head (bf16; their vocabulary rows split where V splits evenly), final norm
    total = 2 * 2 * (V // n if V % n == 0 else V) * H + 2 * H
    for layer in range(L):
        attn = (2 * H + fp8(Q_LORA, H) + 2 * Q_LORA + fp8(KV_LORA + ROPE, H) + 2 * KV_LORA
                + split_rows(HEADS * (NOPE + ROPE), Q_LORA, n) + split_rows(HEADS * (NOPE + VDIM), KV_LORA, n)
                + hidden_rows(HEADS * VDIM, n)
                + fp8(IDX_HEADS * IDX_DIM, Q_LORA) + fp8(IDX_DIM, H) + 2 * 4 * IDX_DIM + 2 * IDX_HEADS * H
                + 2 * H)
        total += attn
        if layer < DENSE:
            total += 2 * split_rows(INTER, H, n) + hidden_rows(INTER, n)
        else:
            total += 2 * E * H + 4 * E  # router and its bias
            total += sum(mlp(MOE_INTER) for e in range(E) if e % n == rank)
            if layer % n == rank:  # the layer's shared experts
                total += mlp(SHARED * MOE_INTER)
    return total


if __name__ == "__main__":
    print("checkpoint", rank_bytes(1, 0))
    for r in range(8):
        print(f"8 ranks, rank {r}", rank_bytes(8, r))
    for r in (0, 2, 3):
        print(f"16 ranks, rank {r}", rank_bytes(16, r))
    tokens = 131072
    print("fp8 latent cache at 128K", tokens * L * (KV_LORA + 4 * (KV_LORA // 128) + 2 * ROPE))
    print("indexer cache at 128K", tokens * L * (IDX_DIM + 4))
