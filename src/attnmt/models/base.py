"""The model contracts: one for every sequence-to-sequence family, one for language models.

Training, search, scoring and plotting only use these methods, so they never
branch on the architecture.

:class:`Seq2SeqModel` (the fixed-context seq2seq, the attention RNNs, the Transformer):

- ``encode(src, src_lengths, embedded=None) -> EncoderOutput``; ``embedded`` (B, S, E)
  replaces the source token embeddings (``src`` still gives the padding)
- ``embed_source(src) -> (B, S, E)``: those token embeddings (before positions and
  dropout), what gradient attributions differentiate
- ``init_state(enc) -> state``: the family's :class:`DecoderState` dataclass of
  batch-first tensors (and plain values)
- ``decode_step(prev_tokens, state) -> (logits, state, weights | None)``: it consumes
  ``state`` (a cache may be extended in place); continue from the state it returns
- ``reorder_state(state, rows, source_rows) -> state``: beam search's reorder
- ``forward(src, src_lengths, tgt_in, embedded=None, positions=None) -> (logits,
  weights | None)`` (teacher forcing); ``positions`` (B,) keeps only the logits of one
  target position per row (B, 1, V), all an attribution of that position needs
- ``explain_step(prev_tokens, state) -> (logits, state, numbers | None)``: a decoding
  step with the numbers of attention's five steps (RNN families) or of every layer's
  attention (the Transformer)
- ``explain_encoder(src, src_lengths) -> [numbers per layer] | None``: the encoder's
  self-attention numbers (the Transformer)
- ``zero_heads(state, [(layer, head), ...]) -> state``: silence cross-attention heads for
  the rest of decoding (the explainer's intervention; ValueError where there are none);
  ``attention_shape``: (layers, heads) of that attention, None for a single attention
- ``attention_layers(src, src_lengths, tgt_in) -> (B, layers, heads, T, S) | None``:
  the attention of every layer and head, for models that have more than one
- ``max_source_len`` / ``max_target_len``: the longest source (with ``</s>``) and the
  longest output (with ``</s>``) the model accepts; ``None`` for no limit

Attention weights are ``(batch, tgt_len, src_len)``; a model without attention
(``has_attention = False``) returns ``None``.

:class:`CausalLM` (the decoder-only language model), driven by ``generate.generate``:

- ``init_state() -> state``: an empty cache
- ``decode(tokens, state) -> (logits, state)``: tokens (B, T) after the cached prefix,
  any number of them at once (a prompt, then one token per step)
- ``forward(tokens) -> logits``: teacher forcing, equal to ``decode`` from an empty state
- ``max_positions``: the longest sequence it accepts
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, nn

S = TypeVar("S", bound="DecoderState")


@dataclass
class DecoderState:
    """Base of every family's decoder state: one typed field per part, batch-first."""

    def select(self: S, index: Tensor, fields: Iterable[str] | None = None) -> S:
        """A copy whose tensors (all of them, or those of ``fields``) keep the batch rows
        ``index``, in that order (beam search's reorder); plain values stay as they are."""
        names = [f.name for f in dataclasses.fields(self)] if fields is None else fields
        return dataclasses.replace(self, **{n: _pick(getattr(self, n), index) for n in names})


State = DecoderState


def _pick(value: Any, index: Tensor) -> Any:
    if hasattr(value, "index_select"):       # a tensor, or a cache that selects its rows
        return value.index_select(0, index)
    if isinstance(value, (list, tuple)):
        return type(value)(_pick(v, index) for v in value)
    return value


@dataclass
class EncoderOutput:
    memory: Tensor | None   # (B, S, D) encoder states; None for the fixed-context seq2seq
    mask: Tensor            # (B, S) True at real source tokens
    final: Any = None       # what the decoder starts from (RNN final states)


class ParameterCount:
    """What every model reports: its number of parameters (``/info``, the training log)."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Seq2SeqModel(ParameterCount, nn.Module):
    """Base class; see the module docstring for the contract."""

    has_attention = True

    def encode(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None
               ) -> EncoderOutput:
        raise NotImplementedError

    def embed_source(self, src: Tensor) -> Tensor:
        """src (B, S) -> the token embeddings (B, S, E) the encoder reads."""
        raise NotImplementedError

    def init_state(self, enc: EncoderOutput) -> State:
        raise NotImplementedError

    def decode_step(self, prev_tokens: Tensor, state: State, need_weights: bool = False
                    ) -> tuple[Tensor, State, Tensor | None]:
        """prev_tokens (B,) -> logits (B, V), new state, weights (B, S) or None."""
        raise NotImplementedError

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                need_weights: bool = False, embedded: Tensor | None = None,
                positions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: logits (B, T, V) and weights (B, T, S) or None; ``embedded``
        as in :meth:`encode`; ``positions`` (B,): logits (B, 1, V) at those positions."""
        raise NotImplementedError

    def reorder_state(self, state: State, rows: Tensor, source_rows: Tensor | None) -> State:
        """Beam search's reorder: ``rows`` picks the surviving hypotheses; ``source_rows``
        (None when no sentence left the batch) picks rows for what depends only on the
        source sentence. Models whose state holds such parts override this to skip them."""
        return select_state(state, rows)

    def explain_step(self, prev_tokens: Tensor, state: State
                     ) -> tuple[Tensor, State, dict | None]:
        """``decode_step`` with the numbers of attention's five steps (for the explainer):
        ``query``, ``keys``, ``values``, ``scores``, ``weights``, ``context`` (each with
        a batch dimension), ``decoder_state``, ``combined`` and the ``scorer``'s name; the
        fixed-context seq2seq gives its one ``context``. None where not implemented."""
        logits, state, _ = self.decode_step(prev_tokens, state)
        return logits, state, None

    def explain_encoder(self, src: Tensor, src_lengths: Tensor) -> list[dict] | None:
        """The encoder's self-attention numbers, one dict per layer; None without it."""
        return None

    def zero_heads(self, state: State, heads: list[tuple[int, int]]) -> State:
        """Silence attention heads (layer, head) in ``state``; models with a single
        attention have no heads to silence."""
        raise ValueError("this model has a single attention, not layers of heads")

    @property
    def attention_shape(self) -> tuple[int, int] | None:
        """(layers, heads) of the decoder's attention over the source; None for one."""
        return None

    def attention_layers(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor
                         ) -> Tensor | None:
        """Teacher-forced attention of every layer and head (B, layers, heads, T, S); None
        for models with a single attention (its weights come from :meth:`forward`)."""
        return None

    @property
    def max_source_len(self) -> int | None:
        """Longest source the model accepts, counting ``</s>`` (None: no limit)."""
        return None

    @property
    def max_target_len(self) -> int | None:
        """Longest output the model can write, counting ``</s>`` (None: no limit)."""
        return None


class CausalLM(ParameterCount, nn.Module):
    """Base class of decoder-only language models; see the module docstring."""

    has_attention = False
    max_positions: int

    def init_state(self) -> State:
        raise NotImplementedError

    def decode(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """tokens (B, T) after the cached prefix -> logits (B, T, V), new state."""
        raise NotImplementedError


def select_state(state: S, index: Tensor) -> S:
    """Keep/reorder the batch rows ``index`` of every tensor in a state (beam search)."""
    return state.select(index)


def padding_mask(src: Tensor, src_lengths: Tensor) -> Tensor:
    """(B, S) True at real positions."""
    import torch

    positions = torch.arange(src.size(1), device=src.device)
    return positions[None, :] < src_lengths[:, None]
