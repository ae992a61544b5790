"""An ensemble of translation models behind the one model contract, so search decodes it
like any single model.

At every step the members' log-probabilities are averaged (a product of experts,
renormalised by the search's softmax); each member keeps its own decoder state. All
members must share the source and target vocabularies. Attention, where every member has
it, is the members' mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import DecoderState, EncoderOutput, Seq2SeqModel


@dataclass
class EnsembleState(DecoderState):
    parts: list[DecoderState]

    def select(self, index: Tensor, fields=None) -> EnsembleState:
        return EnsembleState([p.select(index) for p in self.parts])


def _mean_logprobs(logits: Sequence[Tensor]) -> Tensor:
    return torch.stack([torch.log_softmax(x.float(), -1) for x in logits]).mean(0)


def _mean_weights(weights: Sequence[Tensor | None]) -> Tensor | None:
    if any(w is None for w in weights):
        return None
    return torch.stack([w.float() for w in weights]).mean(0)


def _min_limit(limits: Sequence[int | None]) -> int | None:
    known = [x for x in limits if x is not None]
    return min(known) if known else None


class Ensemble(Seq2SeqModel):
    """Several :class:`Seq2SeqModel` members decoded as one (see the module docstring)."""

    def __init__(self, members: Sequence[Seq2SeqModel]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(members)
        self.has_attention = all(m.has_attention for m in members)

    def encode(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None
               ) -> EncoderOutput:
        if embedded is not None:
            raise ValueError("an ensemble's members embed the source each in their own way")
        parts = [m.encode(src, src_lengths) for m in self.members]
        return EncoderOutput(memory=None, mask=parts[0].mask, final=parts)

    def init_state(self, enc: EncoderOutput) -> EnsembleState:
        return EnsembleState([m.init_state(e) for m, e in zip(self.members, enc.final,
                                                               strict=True)])

    def decode_step(self, prev_tokens: Tensor, state: EnsembleState, need_weights: bool = False
                    ) -> tuple[Tensor, EnsembleState, Tensor | None]:
        steps = [m.decode_step(prev_tokens, s, need_weights=need_weights)
                 for m, s in zip(self.members, state.parts, strict=True)]
        return (_mean_logprobs([x[0] for x in steps]), EnsembleState([x[1] for x in steps]),
                _mean_weights([x[2] for x in steps]))

    def reorder_state(self, state: EnsembleState, rows: Tensor, source_rows: Tensor | None
                      ) -> EnsembleState:
        return EnsembleState([m.reorder_state(s, rows, source_rows)
                              for m, s in zip(self.members, state.parts, strict=True)])

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                need_weights: bool = False, embedded: Tensor | None = None,
                positions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if embedded is not None:
            raise ValueError("an ensemble's members embed the source each in their own way")
        outs = [m(src, src_lengths, tgt_in, need_weights=need_weights, positions=positions)
                for m in self.members]
        return _mean_logprobs([o[0] for o in outs]), _mean_weights([o[1] for o in outs])

    @property
    def max_source_len(self) -> int | None:
        return _min_limit([m.max_source_len for m in self.members])

    @property
    def max_target_len(self) -> int | None:
        return _min_limit([m.max_target_len for m in self.members])
