"""Every attention scoring function, in one place.

The mechanism, step by step (the numbers are referred to in the code below):

1. **Encoder hidden states** h̄ₛ, one per source position, are the keys and
   values. Anything that depends only on them (a projection W h̄ₛ) is computed
   once per sentence by :meth:`Attention.project_keys` and passed back in on
   every decoder step — the modules keep no state between calls.
2. **Scores**: the decoder state hₜ is compared with every h̄ₛ.
3. **Softmax** over source positions turns scores into weights aₜ(s); padding
   positions are masked to −∞ first, so their weight is exactly 0 and the
   weights of the real positions sum to 1.
4. **Context vector** cₜ = Σₛ aₜ(s) h̄ₛ, a fresh summary of the source for this step.
5. **Combine** with the decoder state (in the decoder, ``rnn.py``):
   h̃ₜ = tanh(W_c [cₜ; hₜ]) and p(yₜ) = softmax(W_s h̃ₜ)  (Luong et al. 2015, eq. 5–6).

Scoring functions:

- ``dot``       score = hₜᵀ h̄ₛ                        Luong et al. 2015, eq. 8
- ``general``   score = hₜᵀ W_a h̄ₛ                    Luong et al. 2015, eq. 8
- ``concat``    score = v_aᵀ tanh(W_a [hₜ; h̄ₛ])        Luong et al. 2015, eq. 8
- ``additive``  score = v_aᵀ tanh(W_a sₜ₋₁ + U_a h̄ₛ)   Bahdanau et al. 2015, A.1.2
  (same form as ``concat`` with W_a split in two; the difference is the query:
  Bahdanau's decoder asks with its *previous* state sₜ₋₁, before its RNN step)
- :class:`MultiHeadAttention`: softmax(QKᵀ/√d_k) V over h heads, Vaswani et al.
  2017, §3.2, computed with ``F.scaled_dot_product_attention`` unless the
  weights themselves are asked for.

All return ``(context, weights)`` with weights of shape ``(batch, tgt_len, src_len)``
(``(batch, heads, tgt_len, src_len)`` for multi-head).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backend import sdpa


class Attention(nn.Module):
    """Base class of the RNN attention variants: subclasses define :meth:`score`."""

    def project_keys(self, memory: Tensor) -> Tensor:
        """Step 1, once per sentence. memory: (B, S, D_mem) -> keys (B, S, D_key)."""
        return memory

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """Step 2. query: (B, T, D_q), keys: (B, S, D_key) -> scores (B, T, S)."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor,
                trace: dict | None = None) -> tuple[Tensor, Tensor]:
        """query (B, T, D_q); keys from :meth:`project_keys`; values (B, S, D_mem);
        mask (B, S), True at real tokens. Returns context (B, T, D_mem), weights (B, T, S).
        ``trace``, when given, receives the scores too (the explainer's numbers)."""
        scores = self.score(query, keys)                                 # 2. (B, T, S)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)                          # 3. (B, T, S)
        context = torch.bmm(weights, values)                             # 4. (B, T, D_mem)
        if trace is not None:
            trace.update(query=query, keys=keys, values=values, scores=scores,
                         weights=weights, context=context, **self.score_parts(query, keys))
        return context, weights

    def score_parts(self, query: Tensor, keys: Tensor) -> dict[str, Tensor]:
        """The intermediate numbers of :meth:`score` (the explainer shows them); none for a
        product of the query with the keys."""
        return {}


class DotAttention(Attention):
    """score = hₜᵀ h̄ₛ — no parameters; query and memory sizes must match."""

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class GeneralAttention(Attention):
    """score = hₜᵀ W_a h̄ₛ — W_a h̄ₛ is projected once per sentence."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.w_a = nn.Linear(memory_size, query_size, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.w_a(memory)                                          # (B, S, D_q)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class ConcatAttention(Attention):
    """score = v_aᵀ tanh(W_a [hₜ; h̄ₛ]), with W_a = [W_q | W_k] so W_k h̄ₛ is computed once."""

    def __init__(self, query_size: int, memory_size: int, attn_size: int | None = None):
        super().__init__()
        attn_size = attn_size or query_size
        self.w_q = nn.Linear(query_size, attn_size, bias=False)
        self.w_k = nn.Linear(memory_size, attn_size, bias=False)
        self.v_a = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.w_k(memory)                                          # (B, S, A)

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.w_q(query)                                              # (B, T, A)
        hidden = torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))          # (B, T, S, A)
        return self.v_a(hidden).squeeze(-1)                              # (B, T, S)

    def score_parts(self, query: Tensor, keys: Tensor) -> dict[str, Tensor]:
        """W_q hₜ, tanh(W_q hₜ + W_k h̄ₛ) for every s, and v_a."""
        q = self.w_q(query)
        return {"projected_query": q, "hidden": torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1)),
                "v_a": self.v_a.weight[0].expand(query.size(0), -1)}


class AdditiveAttention(ConcatAttention):
    """Bahdanau: score = v_aᵀ tanh(W_a sₜ₋₁ + U_a h̄ₛ); the decoder passes sₜ₋₁ as the query."""


def rnn_attention(kind: str, query_size: int, memory_size: int) -> Attention:
    """Build an RNN attention module by name."""
    if kind == "dot":
        return DotAttention()
    if kind == "general":
        return GeneralAttention(query_size, memory_size)
    if kind == "concat":
        return ConcatAttention(query_size, memory_size)
    if kind == "additive":
        return AdditiveAttention(query_size, memory_size)
    raise ValueError(f"unknown attention {kind!r}")


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017, §3.2.2).

    Keys and values are projected by :meth:`project_kv` and passed in, so the
    decoder can cache them (cross-attention: once per sentence; self-attention:
    one new position per step).
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by heads {heads}")
        self.heads, self.d_head, self.dropout = heads, d_model // heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.fused: dict[str, nn.Module] = {}     # inference only, not parameters: fuse_qkv

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.d_head).transpose(1, 2)     # (B, H, T, dh)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, S, D) -> keys, values (B, H, S, dh)."""
        return self._split(self.k_proj(x)), self._split(self.v_proj(x))

    def project_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention: x (B, T, D) -> queries, keys, values (B, H, T, dh); one matrix
        product after :meth:`fuse_qkv`."""
        if "qkv" not in self.fused:
            return (self._split(self.q_proj(x)), *self.project_kv(x))
        q, k, v = self.fused["qkv"](x).chunk(3, dim=-1)
        return self._split(q), self._split(k), self._split(v)

    def fuse_qkv(self, wrap=lambda linear: linear) -> None:
        """For inference: the three projections as one (B, T, 3D) product, their weights
        side by side (``wrap`` may prepack it). A copy kept outside the parameters, so
        ``state_dict`` and parameter counts do not see it: fuse after the weights are final."""
        d = self.q_proj.in_features
        fused = nn.Linear(d, 3 * d, device=self.q_proj.weight.device,
                          dtype=self.q_proj.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([self.q_proj.weight, self.k_proj.weight,
                                          self.v_proj.weight]))
            fused.bias.copy_(torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]))
        self.fused["qkv"] = wrap(fused).requires_grad_(False)

    def forward(self, query: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                causal: bool = False, need_weights: bool = False,
                head_gate: Tensor | None = None, trace: dict | None = None,
                q: Tensor | None = None, bias: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """query (B, T, D), or its projection ``q`` (B, H, T, dh) from :meth:`project_qkv`;
        k, v (B, H, S, dh) — or (B / g, H, S, dh): then each g consecutive query rows
        share one row of keys (the beams of a sentence); mask (B | B / g, S) True at real
        keys.

        Returns output (B, T, D) and, when asked, weights (B, H, T, S). ``head_gate`` (H,)
        multiplies each head's output before the heads are joined (0 silences a head: the
        explainer's intervention); ``trace``, when given, receives every number of the
        computation (the explainer's view of one attention).
        """
        if q is None:
            q = self._split(self.q_proj(query))                          # (B, H, T, dh)
        group = max(1, q.size(0) // k.size(0))   # > 1: beams of a sentence share its keys
        if group > 1:         # (beam search), read once for all of them: (n, H, g*T, dh)
            _, _, t, dh = q.shape
            q = q.view(-1, group, self.heads, t, dh).transpose(1, 2).reshape(
                -1, self.heads, group * t, dh)
        t, s = q.size(2), k.size(2)
        p = self.dropout if self.training else 0.0
        if not need_weights and trace is None and group == 1:
            if causal and mask is None and t == s and bias is None:   # SDPA's own causal mask
                out = sdpa(q, k, v, None, p, causal=True)
            else:
                out = sdpa(q, k, v, _with_bias(_allowed(mask, causal, t, s, q.device), bias), p)
            weights = None
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)    # (B, H, T, S)
            if bias is not None:
                scores = scores + bias
            allowed = _allowed(mask, causal, t, s, q.device)              # (B|1, 1, T|1, S)
            masked = scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))
            weights = torch.softmax(masked, dim=-1)
            out = F.dropout(weights, p) @ v
        if head_gate is not None:
            out = out * head_gate[:, None, None]
        if trace is not None:
            trace.update(query=q, keys=k, values=v, scores=scores, weights=weights,
                         heads=out, allowed=allowed)
        b, _, t, _ = out.shape
        joined = out.transpose(1, 2).reshape(b * group, t // group, self.heads * self.d_head)
        if not need_weights:
            weights = None
        elif group > 1:                              # (n, H, g*T, S) -> (n*g, H, T, S)
            weights = weights.view(b, self.heads, group, t // group, -1).transpose(1, 2) \
                .reshape(b * group, self.heads, t // group, -1)
        projected = self.out_proj(joined)
        if trace is not None:
            trace.update(joined=joined, output=projected)
        return projected, weights


def _with_bias(allowed: Tensor | None, bias: Tensor | None) -> Tensor | None:
    """A boolean mask, or with ``bias`` one additive float mask: the bias where allowed,
    −∞ where not."""
    if bias is None:
        return allowed
    return bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))


def _allowed(mask: Tensor | None, causal: bool, t: int, s: int, device: torch.device
             ) -> Tensor | None:
    """One boolean mask, True where a query may attend; None when every key is allowed.

    mask (B, S) marks real keys. The causal part lets the query at position i of the last
    ``t`` positions see keys 0 .. s - t + i (aligned bottom-right), so a chunk of new tokens
    decoded after a cache of ``s - t`` earlier ones sees what the full forward sees.
    """
    if not causal and mask is None:
        return None
    allowed = mask[:, None, None, :] if mask is not None else None       # (B, 1, 1, S)
    if causal:
        past = torch.ones(t, s, dtype=torch.bool, device=device).tril(s - t)   # (T, S)
        allowed = past if allowed is None else allowed & past
    return allowed
