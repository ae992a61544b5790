"""The model contract shared by every sequence-to-sequence family.

Training, search, scoring and plotting only use these methods, so they never
branch on the architecture:

- ``encode(src, src_lengths) -> EncoderOutput``
- ``init_state(enc) -> state``: a dict of batch-first tensors (and plain values)
- ``decode_step(prev_tokens, state) -> (logits, state, weights | None)``
- ``forward(src, src_lengths, tgt_in) -> (logits, weights | None)`` (teacher forcing)

Attention weights are ``(batch, tgt_len, src_len)``; a model without attention
(``has_attention = False``) returns ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

State = dict[str, Any]


@dataclass
class EncoderOutput:
    memory: Tensor | None   # (B, S, D) encoder states; None for the fixed-context seq2seq
    mask: Tensor            # (B, S) True at real source tokens
    final: Any = None       # what the decoder starts from (RNN final states)


class Seq2SeqModel(nn.Module):
    """Base class; see the module docstring for the contract."""

    has_attention = True

    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOutput:
        raise NotImplementedError

    def init_state(self, enc: EncoderOutput) -> State:
        raise NotImplementedError

    def decode_step(self, prev_tokens: Tensor, state: State, need_weights: bool = False
                    ) -> tuple[Tensor, State, Tensor | None]:
        """prev_tokens (B,) -> logits (B, V), new state, weights (B, S) or None."""
        raise NotImplementedError

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: logits (B, T, V) and weights (B, T, S) or None."""
        raise NotImplementedError

    def reorder_state(self, state: State, rows: Tensor, source_rows: Tensor | None) -> State:
        """Beam search's reorder: ``rows`` picks the surviving hypotheses; ``source_rows``
        (None when no sentence left the batch) picks rows for what depends only on the
        source sentence. Models whose state holds such parts override this to skip them."""
        return select_state(state, rows)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def select_state(state: State, index: Tensor) -> State:
    """Keep/reorder the batch rows ``index`` of every tensor in a state (beam search)."""

    def pick(value: Any) -> Any:
        if isinstance(value, Tensor):
            return value.index_select(0, index)
        if isinstance(value, (list, tuple)):
            return type(value)(pick(v) for v in value)
        return value

    return {key: pick(value) for key, value in state.items()}


def padding_mask(src: Tensor, src_lengths: Tensor) -> Tensor:
    """(B, S) True at real positions."""
    import torch

    positions = torch.arange(src.size(1), device=src.device)
    return positions[None, :] < src_lengths[:, None]
