"""Backend details kept out of the files a student reads first.

:func:`sdpa` is ``F.scaled_dot_product_attention`` with one workaround: under
CPU bf16 autocast it runs the attention itself in float32, because PyTorch's
CPU flash-attention backward in bf16 is several times slower than in float32
(the measurement is in ``benchmarks/README.md``).

A single query (one decoding step) is computed with two plain matrix products on a
CPU, where they beat the flash kernel.

:func:`pack_linear_layers` prepares a model for float32 inference on a CPU: every
``nn.Linear`` becomes a :class:`PackedLinear`, whose weight oneDNN reorders once into
its blocked layout instead of on every call — what CTranslate2 does with its own
weights. Decoding multiplies small batches by the same weights hundreds of times,
where that reorder is a large part of each product. A Transformer layer's three
self-attention projections also become one product (``fuse_qkv``), and a ReLU that
follows a Linear in a ``Sequential`` (the feed-forward block) runs inside its kernel.

:class:`Dropout` draws its mask on a CPU from 64-bit random integers, 16 bits per
element, instead of PyTorch's ``bernoulli_``, which draws one random number per element
and was the largest single operator of a training step after the matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _one_query(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None) -> Tensor:
    """Attention for one query position (a decoding step) as two matrix products: on a
    CPU faster than the flash kernel, whose blocking is made for many queries."""
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(q.size(-1) ** -0.5)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores.masked_fill_(~attn_mask, float("-inf"))
    elif attn_mask is not None:                                # an additive mask (ALiBi)
        scores += attn_mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class PackedLinear(nn.Module):
    """Inference-only ``nn.Linear`` with its weight prepacked for oneDNN (CPU, float32).
    ``weight`` and ``bias`` stay the original parameters, so parameter counts see them.

    The prepacked kernel pays a fixed cost per call that a small product does not earn
    back: with fewer than ``PACKED_ROWS`` rows, unless the product is large (rows x
    (inputs + outputs) from ``PACKED_SIZE``: the output projection over the vocabulary),
    the plain BLAS ``F.linear`` is faster (``benchmarks/linear_kernels.py``). A decoding
    step of a few sentences takes it for every layer but the output projection."""

    PACKED_ROWS, PACKED_SIZE = 16, 30_000

    @classmethod
    def packs(cls, rows: int, n_in: int, n_out: int) -> bool:
        """Whether a product of ``rows`` rows takes the prepacked kernel."""
        return rows >= cls.PACKED_ROWS or rows * (n_in + n_out) >= cls.PACKED_SIZE

    def __init__(self, linear: nn.Linear, batch_hint: int = 64, activation: str = "none"):
        super().__init__()
        self.activation = activation          # "relu": the ReLU after it, in the same kernel
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        weight = linear.weight.detach()
        self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint),
                             persistent=False)
        self.bias = linear.bias

    def forward(self, x: Tensor) -> Tensor:
        rows = x.numel() // self.in_features
        # the packed kernel has no backward: gradients (attributions) take F.linear
        if torch.is_grad_enabled() or not self.packs(rows, self.in_features, self.out_features):
            out = F.linear(x, self.weight, self.bias)
            return F.relu(out) if self.activation == "relu" else out
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, self.activation,
                                                  [], "")


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a faster mask on a CPU: each element is kept when 15 random bits
    (four per 64-bit random integer) reach ``round(p * 32768)``, so the drop rate is ``p``
    to 1/32768; the kept elements are scaled by 1 / (1 - p). Elsewhere (GPUs, p 0 or 1,
    evaluation) it is ``nn.Dropout``. The mask comes from PyTorch's generator, so a seed
    and a resumed RNG state give the same masks."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or x.device.type != "cpu" or not 0.0 < self.p < 1.0:
            return super().forward(x)
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
        words = bits.view(torch.int16)[:n].view(x.shape)
        keep = (words & 0x7FFF) >= round(self.p * 32768)
        return x * keep * (1.0 / (1.0 - self.p))


def can_pack(model: nn.Module) -> bool:
    """Prepacking applies to float32 models on a CPU where PyTorch has oneDNN."""
    p = next(model.parameters(), None)
    return (p is not None and p.device.type == "cpu" and p.dtype == torch.float32
            and torch.backends.mkldnn.is_available())


def pack_linear_layers(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (in place) by a :class:`PackedLinear`; the
    model is then for inference only. Unchanged where :func:`can_pack` says no."""
    if not can_pack(model):
        return model
    for module in list(model.modules()):
        if hasattr(module, "fuse_for_inference"):       # Transformer layers: q, k, v fused
            module.fuse_for_inference(PackedLinear)
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for i, (name, child) in enumerate(children):
            if type(child) is not nn.Linear:
                continue
            after = children[i + 1] if i + 1 < len(children) else None
            if isinstance(parent, nn.Sequential) and after and type(after[1]) is nn.ReLU:
                setattr(parent, name, PackedLinear(child, activation="relu"))
                setattr(parent, after[0], nn.Identity())   # (a feed-forward block's ReLU)
            else:
                setattr(parent, name, PackedLinear(child))
    return model.eval()


def sdpa(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, dropout: float,
         causal: bool = False) -> Tensor:
    """Scaled dot-product attention; q (B, H, T, dh), k/v (B, H, S, dh), mask broadcastable
    to (B, H, T, S), True where attending is allowed — or an additive float mask (ALiBi's
    bias, −∞ where not allowed)."""
    if q.size(-2) == 1 and not causal and dropout == 0.0 and q.device.type == "cpu":
        return _one_query(q, k, v, attn_mask)
    additive = attn_mask is not None and attn_mask.dtype != torch.bool
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), dropout_p=dropout, is_causal=causal,
                attn_mask=attn_mask.float() if additive else attn_mask)
    return F.scaled_dot_product_attention(
        q, k, v, dropout_p=dropout, is_causal=causal,
        attn_mask=attn_mask.to(q.dtype) if additive else attn_mask)
