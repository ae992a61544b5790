"""Attention's descendants, built from the Transformer's own layers.

- :class:`EncoderClassifier` (BERT-style, Devlin et al. 2019): the encoder stack
  of ``transformer.py`` plus a classification head over the ``[CLS]`` position
  (the ``<s>`` token, prepended to every sentence) or the mean of all
  positions. With ``n_labels=0`` it is the masked-language-model pre-training
  network (a tied output layer over the vocabulary instead of the head).
- :class:`DecoderLM` (GPT-style, Radford et al. 2018): the decoder layer of
  ``transformer.py`` without cross-attention, causal self-attention, tied
  embeddings and the same key/value cache for generation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .base import CausalLM, DecoderState, ParameterCount, padding_mask
from .transformer import (
    DecoderLayer,
    EncoderLayer,
    LayerCache,
    layer_sizes,
    positioned,
    token_embedding,
    xavier_init,
)


class EncoderClassifier(ParameterCount, nn.Module):
    def __init__(self, m: ModelConfig, vocab: int, n_labels: int):
        super().__init__()
        embed = token_embedding(vocab, m.d_model)
        self.embed = positioned(embed, m)
        self.layers = nn.ModuleList(EncoderLayer(**layer_sizes(m)) for _ in range(m.enc_layers))
        self.norm = nn.LayerNorm(m.d_model) if m.norm == "pre" else nn.Identity()
        self.pooling, self.n_labels, self.max_positions = m.pooling, n_labels, m.max_positions
        if n_labels:
            self.head = nn.Sequential(nn.Dropout(m.dropout), nn.Linear(m.d_model, n_labels))
        xavier_init(self)
        if not n_labels:                       # masked-LM pre-training: tied output layer
            self.mlm = nn.Linear(m.d_model, vocab)
            self.mlm.weight = embed.weight
            nn.init.zeros_(self.mlm.bias)

    def embed_tokens(self, src: Tensor) -> Tensor:
        """src (B, S) -> the scaled token embeddings (B, S, D), before positions and
        dropout: what gradient attributions differentiate."""
        return self.embed.tokens(src)

    def encode(self, src: Tensor, src_lengths: Tensor, collect: list | None = None,
               embedded: Tensor | None = None, keys: Tensor | None = None) -> Tensor:
        """src (B, S) -> states (B, S, D). ``embedded`` (from :meth:`embed_tokens`) replaces
        the token embeddings; ``keys`` (B, S), True where a position may be attended to,
        replaces the padding mask (the explainer takes single tokens out this way)."""
        mask = padding_mask(src, src_lengths) if keys is None else keys
        x = self.embed(src, embedded=embedded)
        for layer in self.layers:
            x = layer(x, mask, collect)
        return self.norm(x)

    def forward(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None,
                keys: Tensor | None = None) -> Tensor:
        """Classification logits (B, n_labels), or masked-LM logits (B, S, V) when
        n_labels=0; ``embedded`` and ``keys`` as in :meth:`encode`."""
        x = self.encode(src, src_lengths, embedded=embedded, keys=keys)
        if not self.n_labels:
            return self.mlm(x)
        if self.pooling == "cls":
            pooled = x[:, 0]                                               # (B, D)
        else:
            mask = padding_mask(src, src_lengths).unsqueeze(-1).to(x.dtype)
            pooled = (x * mask).sum(1) / mask.sum(1)
        return self.head(pooled)

    @torch.no_grad()
    def self_attention(self, src: Tensor, src_lengths: Tensor) -> Tensor:
        """Self-attention of every layer and head: (B, layers, heads, S, S)."""
        collected: list[Tensor] = []
        self.encode(src, src_lengths, collected)
        return torch.stack(collected, 1)


@dataclass
class LMState(DecoderState):
    cache: list | None      # per layer: its self-attention LayerCache (None: keep none)
    step: int = 0           # positions decoded so far


class DecoderLM(CausalLM):
    """A causal Transformer language model with a key/value cache."""

    def __init__(self, m: ModelConfig, vocab: int):
        super().__init__()
        embed = token_embedding(vocab, m.d_model)
        self.embed = positioned(embed, m)
        self.layers = nn.ModuleList(DecoderLayer(**layer_sizes(m), cross=False)
                                    for _ in range(m.dec_layers))
        self.norm = nn.LayerNorm(m.d_model) if m.norm == "pre" else nn.Identity()
        xavier_init(self)
        self.out = nn.Linear(m.d_model, vocab, bias=False)
        self.out.weight = embed.weight
        self.max_positions = m.max_positions

    def init_state(self) -> LMState:
        return LMState(cache=[LayerCache() for _ in self.layers])

    def decode(self, tokens: Tensor, state: LMState) -> tuple[Tensor, LMState]:
        """tokens (B, T) after the cached prefix -> logits (B, T, V), new state (its cache
        extended in place)."""
        x = self.embed(tokens, offset=state.step)
        caches = state.cache
        for i, layer in enumerate(self.layers):
            x, _ = layer(x, None, None, caches[i] if caches is not None else None)
        return self.out(self.norm(x)), LMState(cache=caches, step=state.step + tokens.size(1))

    def forward(self, tokens: Tensor) -> Tensor:
        """Teacher forcing: tokens (B, T) -> next-token logits (B, T, V); no cache kept."""
        return self.decode(tokens, LMState(cache=None))[0]

    @torch.no_grad()
    def self_attention(self, tokens: Tensor) -> Tensor:
        """Causal self-attention of every layer and head over ``tokens`` (B, T):
        (B, layers, heads, T, T), zero above the diagonal (no position sees a later one)."""
        x, collected = self.embed(tokens), []
        for layer in self.layers:
            trace: dict = {}
            x, _ = layer(x, None, None, trace=trace)
            collected.append(trace["self"]["weights"])
        return torch.stack(collected, 1)
