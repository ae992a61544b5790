"""Translation by a decoder alone: source, separator and target in one causal sequence.

The GPT-style translator of today in its simplest form: one stack of causal
self-attention layers (the decoder layer of ``transformer.py`` without cross-attention)
reads ``x₁ … xₘ </s> <s> y₁ … yₙ`` left to right and predicts each next target token;
the loss covers the target tokens only (the logits at source positions are never
computed). The source's ``</s>`` and the target's ``<s>`` separate the two.

It keeps the sequence-to-sequence contract (``base.py``), so the trainer, the search
(greedy, beam, sampling, prefixes, constraints), scoring, alignment and serving treat it
like every other family:

- ``encode`` runs the stack over the source once and keeps every layer's keys and values
  (the key/value cache over the source prefix);
- ``decode_step`` appends one target token to that cache;
- the attention it returns is its target positions' causal self-attention over the
  source positions (mean of layers and heads): the share of each target query's
  attention that goes back to the source — unlike cross-attention it need not sum to 1,
  the rest goes to the target written so far.

Sources are padded on the right inside the sequence, so padded keys are masked and every
row's target positions continue its own source's positions (``lengths + t``): the
network sees exactly what it would see for that sentence alone. Source and target share
the position table; with a joint vocabulary they share the token table too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .base import DecoderState, EncoderOutput, Seq2SeqModel, padding_mask
from .transformer import (
    DecoderLayer,
    LayerCache,
    layer_sizes,
    positioned,
    token_embedding,
    xavier_init,
)


@dataclass
class DecoderOnlyState(DecoderState):
    cache: list            # per layer: the LayerCache over the source and the target so far
    mask: Tensor           # (B, S) True at real source tokens
    lengths: Tensor        # (B,) source lengths: the position of each row's <s>
    step: int = 0          # target positions decoded so far


class DecoderOnlyTranslator(Seq2SeqModel):
    """A causal Transformer that translates: source, separator and target in one sequence."""

    def __init__(self, m: ModelConfig, src_vocab: int, tgt_vocab: int, share_src: bool = False):
        super().__init__()
        tgt_embed = token_embedding(tgt_vocab, m.d_model)
        self.src_tokens = tgt_embed if share_src else token_embedding(src_vocab, m.d_model)
        self.embed = positioned(tgt_embed, m)          # target tokens, and every position
        self.layers = nn.ModuleList(DecoderLayer(**layer_sizes(m), cross=False)
                                    for _ in range(m.dec_layers))
        self.norm = nn.LayerNorm(m.d_model) if m.norm == "pre" else nn.Identity()
        xavier_init(self)
        self.out = nn.Linear(m.d_model, tgt_vocab, bias=False)
        if m.tie_embeddings:
            self.out.weight = tgt_embed.weight
        self.max_positions = m.max_positions

    def embed_source(self, src: Tensor) -> Tensor:
        return self.src_tokens(src) * self.embed.scale

    def _source(self, src: Tensor, embedded: Tensor | None) -> Tensor:
        positions = torch.arange(src.size(1), device=src.device).expand_as(src)
        return self.embed(src, positions=positions,
                          embedded=self.embed_source(src) if embedded is None else embedded)

    def _run(self, x: Tensor, keys: Tensor, caches: list | None, need_weights: bool,
             positions: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Every layer over ``x`` (the new positions, at ``positions`` (B, T)) with ``keys``
        (B, K) marking the real keys; the per-layer self-attention weights (B, H, T, K)
        when asked."""
        weights = []
        for i, layer in enumerate(self.layers):
            x, w = layer(x, None, None, caches[i] if caches is not None else None,
                         need_weights, self_mask=keys, positions=positions)
            weights.append(w)
        return x, weights

    def encode(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None
               ) -> EncoderOutput:
        """The stack over the source; ``final`` holds each layer's key/value cache."""
        mask = padding_mask(src, src_lengths)
        caches = [LayerCache() for _ in self.layers]
        positions = torch.arange(src.size(1), device=src.device).expand_as(src)
        x, _ = self._run(self._source(src, embedded), mask, caches, False, positions)
        return EncoderOutput(x, mask, final=caches)

    def init_state(self, enc: EncoderOutput) -> DecoderOnlyState:
        caches = [LayerCache(c.k, c.v, c.length, c.pos) for c in enc.final]
        return DecoderOnlyState(cache=caches, mask=enc.mask, lengths=enc.mask.sum(1))

    def reorder_state(self, state: DecoderOnlyState, rows: Tensor,
                      source_rows: Tensor | None) -> DecoderOnlyState:
        """The cache holds each hypothesis's own tokens, so it follows the hypotheses; the
        source mask and lengths change only when sentences leave the batch."""
        state = state.select(rows, ["cache"])
        return state if source_rows is None else state.select(source_rows, ["mask", "lengths"])

    def _keys(self, mask: Tensor, target: int) -> Tensor:
        return torch.cat([mask, mask.new_ones(mask.size(0), target)], 1)

    def decode_step(self, prev_tokens: Tensor, state: DecoderOnlyState,
                    need_weights: bool = False
                    ) -> tuple[Tensor, DecoderOnlyState, Tensor | None]:
        s = state.mask.size(1)
        positions = (state.lengths + state.step)[:, None]
        x = self.embed(prev_tokens[:, None], positions=positions)
        x, weights = self._run(x, self._keys(state.mask, state.step + 1), state.cache,
                               need_weights, positions)
        logits = self.out(self.norm(x[:, 0]))
        state = replace(state, step=state.step + 1)
        if not need_weights:
            return logits, state, None
        return logits, state, torch.stack(weights, 1)[:, :, :, 0, :s].mean(dim=(1, 2))

    def _teacher_forced(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                        need_weights: bool, embedded: Tensor | None = None
                        ) -> tuple[Tensor, list[Tensor]]:
        """The whole sequence at once: the target positions' states (B, T, D) and, when
        asked, every layer's weights of the target queries over the source (B, H, T, S)."""
        s, t = src.size(1), tgt_in.size(1)
        mask = padding_mask(src, src_lengths)
        positions = src_lengths[:, None] + torch.arange(t, device=src.device)
        x = torch.cat([self._source(src, embedded), self.embed(tgt_in, positions=positions)], 1)
        every = torch.cat([torch.arange(s, device=src.device).expand_as(src), positions], 1)
        x, weights = self._run(x, self._keys(mask, t), None, need_weights, every)
        return x[:, s:], [w[:, :, s:, :s] for w in weights] if need_weights else []

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                need_weights: bool = False, embedded: Tensor | None = None,
                positions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        x, weights = self._teacher_forced(src, src_lengths, tgt_in, need_weights, embedded)
        if positions is not None:
            x = x[torch.arange(x.size(0), device=x.device), positions, None]
        logits = self.out(self.norm(x))
        return logits, torch.stack(weights, 1).mean(dim=(1, 2)) if need_weights else None

    @torch.no_grad()
    def attention_layers(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """The target queries' causal self-attention over the source, every layer and head:
        (B, layers, heads, T, S)."""
        return torch.stack(self._teacher_forced(src, src_lengths, tgt_in, True)[1], 1)

    @property
    def attention_shape(self) -> tuple[int, int]:
        return len(self.layers), self.layers[0].self_attn.heads

    @property
    def max_source_len(self) -> int:
        """Half the positions for the source (with ``</s>``), the rest for the target."""
        return self.max_positions // 2

    @property
    def max_target_len(self) -> int:
        return self.max_positions - self.max_source_len
