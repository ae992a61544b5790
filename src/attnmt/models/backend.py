"""Backend details kept out of the files a student reads first.

:func:`sdpa` is ``F.scaled_dot_product_attention`` with one workaround: under
CPU bf16 autocast it runs the attention itself in float32, because PyTorch's
CPU flash-attention backward in bf16 is several times slower than in float32
(the measurement is in ``benchmarks/README.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sdpa(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, dropout: float,
         causal: bool = False) -> Tensor:
    """Scaled dot-product attention; q (B, H, T, dh), k/v (B, H, S, dh), mask broadcastable
    to (B, H, T, S), True where attending is allowed."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                                  attn_mask=attn_mask, dropout_p=dropout,
                                                  is_causal=causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout,
                                          is_causal=causal)
