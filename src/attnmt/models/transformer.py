"""The Transformer (Vaswani et al. 2017): attention only, no recurrence.

Encoder layer: self-attention + position-wise FFN; decoder layer: causal
self-attention + cross-attention over the encoder output + FFN. Pre-norm by
default (stable without long warm-up), post-norm as in the paper as an option.
Incremental decoding keeps a key/value cache: a step projects one new position
per layer, and cross-attention keys/values are projected once per sentence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .attention import MultiHeadAttention
from .backend import Dropout
from .base import DecoderState, EncoderOutput, Seq2SeqModel, padding_mask
from .cache import LayerCache
from .positions import SCHEMES, alibi_bias, alibi_slopes, rotate, rotation_table


def sinusoidal_positions(length: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)  (§3.5). (L, D)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


def xavier_init(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear, as in Vaswani et al."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def layer_sizes(m: ModelConfig) -> dict:
    """The sizes of an encoder or decoder layer, as the model config gives them."""
    return dict(d_model=m.d_model, heads=m.heads, ffn=m.ffn, dropout=m.dropout,
                pre_norm=m.norm == "pre", attention_dropout=m.attention_dropout,
                activation_dropout=m.activation_dropout, activation=m.activation,
                positions=m.positions, max_positions=m.max_positions)


def positioned(embed: nn.Embedding, m: ModelConfig) -> Embeddings:
    """Token embeddings with the config's positions and dropout."""
    return Embeddings(embed, m.max_positions, m.positions, m.dropout, scale=m.scale_embedding)


def token_embedding(vocab: int, d_model: int) -> nn.Embedding:
    """N(0, d^-1/2) embeddings (scaled by √d in :class:`Embeddings`), zero vector for <pad>."""
    emb = nn.Embedding(vocab, d_model, padding_idx=0)
    nn.init.normal_(emb.weight, 0.0, d_model ** -0.5)
    with torch.no_grad():
        emb.weight[0].zero_()
    return emb


class Embeddings(nn.Module):
    """Token embedding x √d_model plus positions (sinusoidal or learned), then dropout."""

    def __init__(self, embed: nn.Embedding, max_positions: int, positions: str, dropout: float,
                 scale: bool = True):
        super().__init__()
        self.embed, self.scale = embed, math.sqrt(embed.embedding_dim) if scale else 1.0
        d = embed.embedding_dim
        self.learned = nn.Embedding(max_positions, d) if positions == "learned" else None
        table = (torch.zeros(max_positions, d) if positions in SCHEMES     # in the attention
                 else sinusoidal_positions(max_positions, d))
        self.register_buffer("table", table, persistent=False)
        self.dropout = Dropout(dropout)

    def tokens(self, tokens: Tensor) -> Tensor:
        """The scaled token embeddings alone, before positions and dropout."""
        return self.embed(tokens) * self.scale

    def forward(self, tokens: Tensor, offset: int = 0, embedded: Tensor | None = None,
                positions: Tensor | None = None) -> Tensor:
        """tokens (B, T) -> (B, T, D); ``offset`` is the position of the first token, or
        ``positions`` (B, T) gives each token's own; ``embedded`` (from :meth:`tokens`)
        replaces the token part."""
        t = tokens.size(1)
        table = self.learned.weight if self.learned is not None else self.table
        pos = table[offset:offset + t] if positions is None else table[positions]
        return self.dropout((self.tokens(tokens) if embedded is None else embedded) + pos)


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU}


class FeedForward(nn.Sequential):
    """Position-wise FFN (§3.3): Linear -> ReLU (or GELU, swish) -> [dropout] -> Linear."""

    def __init__(self, d_model: int, ffn: int, dropout: float, activation: str = "relu"):
        layers = [nn.Linear(d_model, ffn), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(Dropout(dropout))
        super().__init__(*layers, nn.Linear(ffn, d_model))


class _Sublayers(nn.Module):
    """Residual connections with a layer norm, before (pre-norm) or after (post-norm, as in
    Vaswani et al.) each sub-layer: ``norm_in(i, x)`` gives the sub-layer's input and
    ``add(i, x, out)`` the residual sum."""

    def __init__(self, d_model: int, n: int, pre_norm: bool, dropout: float,
                 heads: int = 1, positions: str = "sinusoidal", max_positions: int = 1024):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n))
        self.pre_norm, self.dropout = pre_norm, Dropout(dropout)
        self.scheme = positions if positions in SCHEMES else None
        if self.scheme == "alibi":
            self.register_buffer("slopes", alibi_slopes(heads), persistent=False)
        if self.scheme == "rope":
            self.register_buffer("rotation", rotation_table(max_positions, d_model // heads),
                                 persistent=False)

    def place(self, q: Tensor, k: Tensor, q_pos: Tensor | None, k_pos: Tensor | None,
              causal: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """Queries and keys with positions (RoPE rotates them) and the scores' bias (ALiBi);
        unchanged for positions added to the embeddings."""
        if self.scheme == "rope":
            return (rotate(q, q_pos, self.rotation),
                    k if k_pos is None else rotate(k, k_pos, self.rotation), None)
        if self.scheme == "alibi":
            return q, k, alibi_bias(self.slopes, q_pos, k_pos, causal)
        return q, k, None

    def norm_in(self, i: int, x: Tensor) -> Tensor:
        return self.norms[i](x) if self.pre_norm else x

    def add(self, i: int, x: Tensor, out: Tensor) -> Tensor:
        x = x + self.dropout(out)
        return x if self.pre_norm else self.norms[i](x)

    def fuse_for_inference(self, wrap=lambda linear: linear) -> None:
        """Self-attention's q, k, v projections as one product (see ``fuse_qkv``)."""
        self.self_attn.fuse_qkv(wrap)


class EncoderLayer(_Sublayers):
    def __init__(self, *, d_model: int, heads: int, ffn: int, dropout: float, pre_norm: bool,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 activation: str = "relu", positions: str = "sinusoidal",
                 max_positions: int = 1024):
        super().__init__(d_model, 2, pre_norm, dropout, heads, positions, max_positions)
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn, activation_dropout, activation)

    def forward(self, x: Tensor, mask: Tensor, collect: list | None = None,
                trace: dict | None = None) -> Tensor:
        """x (B, S, D), mask (B, S). Appends self-attention weights to ``collect`` if given;
        ``trace`` receives the self-attention's numbers (the explainer)."""
        y = self.norm_in(0, x)
        q, k, v = self.self_attn.project_qkv(y)                           # (B, H, S, dh)
        pos = torch.arange(x.size(1), device=x.device)[None] if self.scheme else None
        q, k, bias = self.place(q, k, pos, pos, causal=False)
        out, weights = self.self_attn(y, k, v, mask, need_weights=collect is not None,
                                      trace=trace, q=q, bias=bias)
        x = self.add(0, x, out)
        if collect is not None:
            collect.append(weights)
        return self.add(1, x, self.ffn(self.norm_in(1, x)))


class DecoderLayer(_Sublayers):
    """Causal self-attention, cross-attention (unless ``cross=False``: the decoder-only LM)
    and the FFN."""

    def __init__(self, *, d_model: int, heads: int, ffn: int, dropout: float, pre_norm: bool,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 cross: bool = True, activation: str = "relu", positions: str = "sinusoidal",
                 max_positions: int = 1024):
        super().__init__(d_model, 3 if cross else 2, pre_norm, dropout, heads, positions,
                         max_positions)
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.cross_attn = MultiHeadAttention(d_model, heads, attention_dropout) if cross else None
        self.ffn = FeedForward(d_model, ffn, activation_dropout, activation)

    def forward(self, x: Tensor, memory_kv: tuple[Tensor, Tensor] | None, src_mask: Tensor | None,
                cache: LayerCache | None = None, need_weights: bool = False,
                head_gate: Tensor | None = None, trace: dict | None = None,
                self_mask: Tensor | None = None, positions: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, D). With ``cache`` (keys, values of earlier positions, extended here in
        place), x is the new position(s) only. Returns x and the cross-attention weights
        (B, H, T, S) when asked — a layer without cross-attention (decoder-only) returns
        its causal self-attention's (B, H, T, K) instead. ``self_mask`` (B, K) marks the
        real keys of the self-attention (a padded source inside the sequence);
        ``head_gate`` (H,) scales the cross-attention heads; ``trace`` gets ``self`` and
        ``cross`` numbers; ``positions`` (B|1, T) are the new tokens' positions (RoPE, ALiBi;
        by default they follow the cache)."""
        y = self.norm_in(0, x)
        q, k, v = self.self_attn.project_qkv(y)                           # (B, H, T, dh)
        pos, bias = positions, None
        if self.scheme and pos is None:
            start = cache.length if cache is not None else 0
            pos = torch.arange(start, start + x.size(1), device=x.device)[None]
        if self.scheme == "rope":
            q, k, _ = self.place(q, k, pos, pos, causal=True)
        k_pos = pos
        if cache is not None:
            k, v, k_pos = cache.extend(k, v, pos if self.scheme == "alibi" else None)
        if self.scheme == "alibi":
            _, _, bias = self.place(q, k, pos, k_pos, causal=True)
        sub = None if trace is None else trace.setdefault("self", {})
        own = need_weights and self.cross_attn is None
        out, weights = self.self_attn(y, k, v, self_mask, causal=y.size(1) > 1,  # one sees all
                                      need_weights=own, trace=sub, q=q, bias=bias)
        x = self.add(0, x, out)
        if self.cross_attn is not None:
            sub = None if trace is None else trace.setdefault("cross", {})
            out, weights = self.cross_attn(self.norm_in(1, x), *memory_kv, mask=src_mask,
                                           need_weights=need_weights, head_gate=head_gate,
                                           trace=sub)
            x = self.add(1, x, out)
        last = len(self.norms) - 1
        return self.add(last, x, self.ffn(self.norm_in(last, x))), weights


@dataclass
class TransformerState(DecoderState):
    memory_kv: list                 # per decoder layer: the encoder memory's (keys, values)
    mask: Tensor                    # (B, S) True at real source tokens
    cache: list | None = None       # per decoder layer: its self-attention LayerCache
    step: int = 0                   # target positions decoded so far
    head_gate: list | None = None   # per layer: (heads,) 1 or 0 (the explainer's silenced heads)

    def select(self, index: Tensor, fields: Iterable[str] | None = None) -> TransformerState:
        """As :meth:`DecoderState.select`; the head gates are per head, not per row, and
        stay as they are."""
        names = [f.name for f in dataclasses.fields(self) if f.name != "head_gate"]
        return super().select(index, names if fields is None else fields)


class Transformer(Seq2SeqModel):
    """Encoder-decoder Transformer with tied embeddings and a KV cache for decoding."""

    def __init__(self, m: ModelConfig, src_vocab: int, tgt_vocab: int, share_src: bool = False):
        super().__init__()
        pre = m.norm == "pre"
        tgt_embed = token_embedding(tgt_vocab, m.d_model)
        src_embed = tgt_embed if share_src else token_embedding(src_vocab, m.d_model)
        self.src_embed, self.tgt_embed = positioned(src_embed, m), positioned(tgt_embed, m)
        self.encoder = nn.ModuleList(EncoderLayer(**layer_sizes(m)) for _ in range(m.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(**layer_sizes(m)) for _ in range(m.dec_layers))
        self.enc_norm = nn.LayerNorm(m.d_model) if pre else nn.Identity()
        self.dec_norm = nn.LayerNorm(m.d_model) if pre else nn.Identity()
        xavier_init(self)
        self.out = nn.Linear(m.d_model, tgt_vocab, bias=m.output_bias)
        if m.output_bias:
            nn.init.zeros_(self.out.bias)
        if m.tie_embeddings:
            self.out.weight = tgt_embed.weight
        self.max_positions = m.max_positions

    def embed_source(self, src: Tensor) -> Tensor:
        return self.src_embed.tokens(src)

    def encode(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None
               ) -> EncoderOutput:
        mask = padding_mask(src, src_lengths)
        x = self.src_embed(src, embedded=embedded)                        # (B, S, D)
        for layer in self.encoder:
            x = layer(x, mask)
        return EncoderOutput(self.enc_norm(x), mask)

    def init_state(self, enc: EncoderOutput) -> TransformerState:
        # contiguous once here, so no decoding step copies them for its matrix products
        memory_kv = [tuple(x.contiguous() for x in layer.cross_attn.project_kv(enc.memory))
                     for layer in self.decoder]
        return TransformerState(memory_kv=memory_kv, mask=enc.mask)

    def reorder_state(self, state: TransformerState, rows: Tensor,
                      source_rows: Tensor | None) -> TransformerState:
        """The self-attention cache follows the hypotheses. The projected encoder memory is
        the same for every beam of a sentence, so it is kept once per sentence — the beams
        of a sentence attend to it together (:meth:`MultiHeadAttention.forward` with
        fewer key rows than query rows) — and copied only when sentences leave the batch
        (the speed this buys is measured in ``benchmarks/README.md``)."""
        before = state.cache[0].k.size(0)   # a reorder follows a step, which filled it
        state = state.select(rows, ["cache"])
        if source_rows is None:
            return state
        per_sentence = before // state.mask.size(0)           # hypotheses per sentence so far
        sentences = torch.unique_consecutive(source_rows // per_sentence)
        return state.select(sentences, ["memory_kv", "mask"])

    def _decode(self, tokens: Tensor, state: TransformerState, need_weights: bool,
                all_weights: list | None = None, keep_cache: bool = True,
                traces: list | None = None, positions: Tensor | None = None
                ) -> tuple[Tensor, TransformerState, Tensor | None]:
        """Decode ``tokens`` after the cached positions; ``keep_cache=False`` (teacher
        forcing) keeps no cache; ``traces`` receives each layer's numbers (explainer);
        ``positions`` (B,) keeps the logits of one position per row."""
        x = self.tgt_embed(tokens, offset=state.step)
        caches = state.cache
        if caches is None and keep_cache:
            caches = [LayerCache() for _ in self.decoder]
        gates = state.head_gate or [None] * len(self.decoder)
        weights = []
        for i, layer in enumerate(self.decoder):
            trace = None if traces is None else {}
            x, w = layer(x, state.memory_kv[i], state.mask,
                         caches[i] if caches is not None else None, need_weights,
                         head_gate=gates[i], trace=trace)
            weights.append(w)
            if traces is not None:
                traces.append(trace)
        state = replace(state, cache=caches, step=state.step + tokens.size(1))
        if positions is not None:
            x = x[torch.arange(x.size(0), device=x.device), positions, None]
        logits = self.out(self.dec_norm(x))
        if not need_weights:
            return logits, state, None
        if all_weights is not None:
            all_weights.extend(weights)
        return logits, state, torch.stack(weights, 1).mean(dim=(1, 2))      # (B, T, S)

    def explain_step(self, prev_tokens: Tensor, state: TransformerState
                     ) -> tuple[Tensor, TransformerState, dict]:
        """A decoding step with every layer's ``self`` and ``cross`` attention numbers."""
        traces: list[dict] = []
        logits, state, _ = self._decode(prev_tokens[:, None], state, False, traces=traces)
        return logits[:, 0], state, {"scorer": "multi-head", "layers": traces}

    def explain_encoder(self, src: Tensor, src_lengths: Tensor) -> list[dict]:
        """Every encoder layer's self-attention numbers (query, keys, values, scores,
        weights, heads, joined, output)."""
        mask = padding_mask(src, src_lengths)
        x, traces = self.src_embed(src), []
        for layer in self.encoder:
            traces.append({})
            x = layer(x, mask, trace=traces[-1])
        return traces

    def zero_heads(self, state: TransformerState, heads: list[tuple[int, int]]
                   ) -> TransformerState:
        """Silence cross-attention heads (layer, head) for the rest of decoding."""
        n, h = len(self.decoder), self.decoder[0].cross_attn.heads
        for layer, head in heads:
            if not (0 <= layer < n and 0 <= head < h):
                raise ValueError(f"layer {layer}, head {head} does not exist: this model has "
                                 f"layers 0..{n - 1} with heads 0..{h - 1}")
        device = state.mask.device
        gates = [torch.ones(h, device=device) for _ in range(n)]
        for layer, head in heads:
            gates[layer][head] = 0.0
        return replace(state, head_gate=gates)

    @property
    def attention_shape(self) -> tuple[int, int]:
        """(layers, heads) of the decoder's cross-attention."""
        return len(self.decoder), self.decoder[0].cross_attn.heads

    def decode_step(self, prev_tokens: Tensor, state: TransformerState,
                    need_weights: bool = False
                    ) -> tuple[Tensor, TransformerState, Tensor | None]:
        logits, state, weights = self._decode(prev_tokens[:, None], state, need_weights)
        return logits[:, 0], state, (weights[:, 0] if weights is not None else None)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                need_weights: bool = False, embedded: Tensor | None = None,
                positions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        state = self.init_state(self.encode(src, src_lengths, embedded))
        logits, _, weights = self._decode(tgt_in, state, need_weights, keep_cache=False,
                                          positions=positions)
        return logits, weights

    @property
    def max_source_len(self) -> int:
        return self.max_positions - 1

    @property
    def max_target_len(self) -> int:
        return self.max_positions - 1

    @torch.no_grad()
    def attention_layers(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Cross-attention of every layer and head: (B, layers, heads, T, S)."""
        state = self.init_state(self.encode(src, src_lengths))
        collected: list[Tensor] = []
        self._decode(tgt_in, state, True, collected, keep_cache=False)
        return torch.stack(collected, 1)
