"""Positions inside attention: rotary embeddings (RoPE) and ALiBi.

The Transformer of Vaswani et al. adds a position vector to each token embedding
(``sinusoidal`` or ``learned`` in :mod:`.transformer`). The two schemes here add nothing
to the embeddings; they act in the self-attention instead, where only the distance
between a query and a key matters:

- **Rotary** (Su et al. 2021, RoFormer): each pair of query/key dimensions is rotated by
  an angle proportional to the position, θᵢ = pos · 10000^(−2i/d_head), so
  ⟨R(m)q, R(n)k⟩ depends on m − n alone.
- **ALiBi** (Press et al. 2022): no rotation; each head adds −slope·distance to its
  scores, with slopes 2^(−8/h), 2^(−16/h), … — attention fades with distance at a rate
  of its own per head, and needs no position table, so it runs past the trained lengths.
  The encoder's distance is |i − j|; a causal decoder's is i − j.

Both apply to self-attention only; cross-attention compares target and source
positions, which live in different sequences, and stays as it is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SCHEMES = ("rope", "alibi")      # the position schemes that live in the attention


def rotation_table(length: int, d_head: int, base: float = 10000.0) -> Tensor:
    """cos and sin of every position's angles, side by side: (length, d_head). Computed
    once per layer, so a decoding step only looks its position up."""
    half = d_head // 2
    freq = base ** (-torch.arange(half, dtype=torch.float32) / half)
    angle = torch.arange(length, dtype=torch.float32)[:, None] * freq           # (L, h)
    return torch.cat([angle.cos(), angle.sin()], dim=-1)


def rotate(x: Tensor, positions: Tensor, table: Tensor | None = None) -> Tensor:
    """x (B, H, T, dh) rotated by ``positions`` (B|1, T): dimension pairs (i, i + dh/2)
    turn by pos · 10000^(−2i/dh) (the "rotate half" layout); ``table`` is
    :func:`rotation_table` for at least the positions asked (made here when not given)."""
    half = x.size(-1) // 2
    if table is None:
        table = rotation_table(int(positions.max()) + 1, x.size(-1)).to(x.device)
    cos, sin = table[positions].to(x.dtype)[:, None].split(half, dim=-1)      # (B, 1, T, h)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def alibi_slopes(heads: int) -> Tensor:
    """The heads' slopes: the geometric sequence 2^(−8/n)·k for the nearest power of two n
    at or below ``heads``, then every other slope of the next power of two for the rest
    (Press et al.'s choice for head counts that are not powers of two)."""
    def powers(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (k + 1) for k in range(n)]

    n = 2 ** math.floor(math.log2(heads))
    slopes = powers(n) + powers(2 * n)[0::2][: heads - n]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: Tensor, q_pos: Tensor, k_pos: Tensor, causal: bool) -> Tensor:
    """The scores' bias (B|1, H, T, K): −slope · (i − j) for a causal decoder, −slope · |i − j|
    for an encoder; q_pos (B|1, T), k_pos (B|1, K)."""
    distance = (q_pos[:, None, :, None] - k_pos[:, None, None, :]).to(torch.float32)
    distance = distance.clamp(min=0) if causal else distance.abs()
    return -slopes.to(distance.device)[None, :, None, None] * distance
