"""Recurrent models: the fixed-context seq2seq and seq2seq with attention.

- :class:`Seq2Seq` (Sutskever et al. 2014; Cho et al. 2014): the encoder's final
  hidden state is the *context vector*, the only thing the decoder ever sees of
  the source. With ``feed_context`` it is also fed to every decoder step and to
  the output layer (Cho et al. 2014, eq. 4 in spirit). No attention weights.
- :class:`AttentionSeq2Seq` (Luong et al. 2015; Bahdanau et al. 2015): at every
  step the decoder attends over all encoder states (see ``attention.py``).

RNN cells: ``rnn`` (Elman, tanh), ``lstm``, ``gru``. Decoder states are kept
batch-first: ``h``/``c`` are (B, layers, H).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..config import ModelConfig
from .attention import rnn_attention
from .base import DecoderState, EncoderOutput, Seq2SeqModel, padding_mask

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class RNNState(DecoderState):
    h: Tensor                   # (B, layers, H) decoder hidden states
    c: Tensor | None = None     # (B, layers, H) LSTM cell states


@dataclass
class FixedContextState(RNNState):
    context: Tensor | None = None   # (B, H) the one context vector every step receives


@dataclass
class AttentionState(RNNState):
    keys: Tensor | None = None      # (B, S, D) the scorer's projected keys
    values: Tensor | None = None    # (B, S, D_mem) the encoder states
    mask: Tensor | None = None      # (B, S) True at real source tokens
    feed: Tensor | None = None      # (B, D_out) the previous h̃ (input feeding)


def set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Start every forget gate at sigmoid(value): PyTorch orders an LSTM's gates input,
    forget, cell, output, and adds two biases; the value goes into ``bias_ih``'s forget
    slice and ``bias_hh``'s is zeroed, so their sum is ``value``."""
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_"):
                bias[hidden:2 * hidden] = value if name.startswith("bias_ih") else 0.0


def reading_order(lengths: Tensor, width: int) -> Tensor:
    """(B, width) positions that read each source backwards with its final ``</s>`` kept
    last (Sutskever et al. 2014): ``c b a </s>`` for ``a b c </s>``; padding stays put."""
    t = torch.arange(width, device=lengths.device)[None]
    last = lengths[:, None] - 1
    return torch.where(t < last, last - 1 - t, t)


class RNNEncoder(nn.Module):
    """Embedding + (bi)RNN over packed sequences; with ``reverse`` the RNN reads each source
    backwards, and its states are returned in the tokens' own order."""

    def __init__(self, embed: nn.Embedding, rnn_type: str, hidden: int, layers: int,
                 bidirectional: bool, dropout: float, reverse: bool = False):
        super().__init__()
        self.embed, self.layers, self.dirs = embed, layers, 2 if bidirectional else 1
        self.reverse = reverse
        self.dropout = nn.Dropout(dropout)
        self.rnn = CELLS[rnn_type](embed.embedding_dim, hidden, layers, batch_first=True,
                                   bidirectional=bidirectional,
                                   dropout=dropout if layers > 1 else 0.0)

    @property
    def output_size(self) -> int:
        return self.rnn.hidden_size * self.dirs

    def _merge(self, h: Tensor) -> Tensor:
        """(layers*dirs, B, H) -> (layers, B, dirs*H): both directions side by side."""
        _, b, hid = h.shape
        return h.view(self.layers, self.dirs, b, hid).transpose(1, 2).reshape(
            self.layers, b, self.dirs * hid)

    def forward(self, src: Tensor, lengths: Tensor, embedded: Tensor | None = None
                ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """src (B, S) -> states (B, S, dirs*H), final states: tuple of (layers, B, dirs*H);
        ``embedded`` (B, S, E) replaces the embedding of ``src``."""
        x = self.dropout(self.embed(src) if embedded is None else embedded)
        order = reading_order(lengths, src.size(1)) if self.reverse else None
        if order is not None:
            x = x.gather(1, order[..., None].expand_as(x))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if order is not None:       # the order is its own inverse: states back at their tokens
            out = out.gather(1, order[..., None].expand_as(out))
        finals = final if isinstance(final, tuple) else (final,)
        return out, tuple(self._merge(f) for f in finals)


class RNNModelBase(Seq2SeqModel):
    """Embeddings, encoder, the bridge from encoder to decoder states, output layer."""

    def __init__(self, m: ModelConfig, src_vocab: int, tgt_vocab: int, *, share_src: bool,
                 dec_input_size: int, out_size: int):
        super().__init__()
        self.rnn_type, self.dec_layers = m.rnn_type, m.dec_layers
        self.tgt_embed = nn.Embedding(tgt_vocab, m.emb_size, padding_idx=0)
        src_embed = self.tgt_embed if share_src else nn.Embedding(src_vocab, m.emb_size,
                                                                  padding_idx=0)
        self.encoder = RNNEncoder(src_embed, m.rnn_type, m.enc_hidden, m.enc_layers,
                                  m.bidirectional, m.dropout, reverse=m.reverse_source)
        n_states = 2 if m.rnn_type == "lstm" else 1
        self.bridge = nn.ModuleList(nn.Linear(self.encoder.output_size, m.dec_hidden)
                                    for _ in range(n_states))
        self.decoder = CELLS[m.rnn_type](dec_input_size, m.dec_hidden, m.dec_layers,
                                         batch_first=True,
                                         dropout=m.dropout if m.dec_layers > 1 else 0.0)
        self.dropout = nn.Dropout(m.dropout)
        self.out = nn.Linear(out_size, tgt_vocab)
        if m.tie_embeddings:
            self.out.weight = self.tgt_embed.weight
        if m.rnn_type == "lstm":
            set_forget_bias(self.encoder.rnn, m.forget_bias)
            set_forget_bias(self.decoder, m.forget_bias)

    def embed_source(self, src: Tensor) -> Tensor:
        return self.encoder.embed(src)

    def _project(self, hidden: Tensor, positions: Tensor | None = None) -> Tensor:
        """The output layer over (B, T, H), or only at each row's position in ``positions``."""
        if positions is not None:
            hidden = hidden[torch.arange(hidden.size(0), device=hidden.device), positions, None]
        return self.out(self.dropout(hidden))

    def _initial_hidden(self, finals: tuple[Tensor, ...]) -> list[Tensor]:
        """Encoder final states -> decoder initial states, each (B, dec_layers, H): the
        hidden state through a linear map and tanh (it lives in (-1, 1)), an LSTM's cell
        state through a linear map alone. A cell state is unbounded; squashing it too
        saturates the tanh once the encoder's cells grow, and the gradient from the
        decoder back to the encoder vanishes (``benchmarks/lstm_bridge.py``)."""
        states = []
        for k, (final, bridge) in enumerate(zip(finals, self.bridge)):
            top = final[-self.dec_layers:] if final.size(0) >= self.dec_layers else \
                final[-1:].expand(self.dec_layers, -1, -1)
            state = bridge(top)
            states.append((torch.tanh(state) if k == 0 else state).transpose(0, 1).contiguous())
        return states

    def _hidden_in(self, state: RNNState):
        h = state.h.transpose(0, 1).contiguous()
        return (h, state.c.transpose(0, 1).contiguous()) if state.c is not None else h

    def _hidden_out(self, hidden, state: RNNState) -> RNNState:
        if isinstance(hidden, tuple):
            return replace(state, h=hidden[0].transpose(0, 1), c=hidden[1].transpose(0, 1))
        return replace(state, h=hidden.transpose(0, 1))

    @staticmethod
    def _hidden_start(enc: EncoderOutput) -> dict:
        """The decoder's first ``h`` (and ``c``) from the encoder's final states."""
        hidden = enc.final
        return {"h": hidden[0], "c": hidden[1] if len(hidden) > 1 else None}


class Seq2Seq(RNNModelBase):
    """The fixed-context-vector model: nothing but the final encoder state reaches the decoder."""

    has_attention = False

    def __init__(self, m: ModelConfig, src_vocab: int, tgt_vocab: int, share_src: bool = False):
        out_size = m.emb_size if m.tie_embeddings else m.dec_hidden
        super().__init__(m, src_vocab, tgt_vocab, share_src=share_src, out_size=out_size,
                         dec_input_size=m.emb_size + (m.dec_hidden if m.feed_context else 0))
        self.feed_context = m.feed_context
        pre_in = m.dec_hidden * (2 if m.feed_context else 1)
        self.pre_output = nn.Linear(pre_in, out_size) if (m.feed_context or m.tie_embeddings) \
            else None

    def encode(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None
               ) -> EncoderOutput:
        _, finals = self.encoder(src, src_lengths, embedded)
        return EncoderOutput(None, padding_mask(src, src_lengths), self._initial_hidden(finals))

    def init_state(self, enc: EncoderOutput) -> FixedContextState:
        start = self._hidden_start(enc)
        return FixedContextState(**start, context=start["h"][:, -1])   # the context vector

    def _decode(self, emb: Tensor, state: FixedContextState, positions: Tensor | None = None
                ) -> tuple[Tensor, FixedContextState]:
        """emb (B, T, E) -> logits (B, T, V), or (B, 1, V) at ``positions``."""
        context = state.context.unsqueeze(1).expand(-1, emb.size(1), -1)
        x = torch.cat([emb, context], -1) if self.feed_context else emb
        out, hidden = self.decoder(x, self._hidden_in(state))      # (B, T, H)
        if self.feed_context:
            out = torch.tanh(self.pre_output(torch.cat([out, context], -1)))
        elif self.pre_output is not None:
            out = self.pre_output(out)
        return self._project(out, positions), self._hidden_out(hidden, state)

    def decode_step(self, prev_tokens: Tensor, state: FixedContextState,
                    need_weights: bool = False) -> tuple[Tensor, FixedContextState, None]:
        logits, state = self._decode(self.tgt_embed(prev_tokens)[:, None], state)
        return logits[:, 0], state, None

    def explain_step(self, prev_tokens: Tensor, state: FixedContextState
                     ) -> tuple[Tensor, FixedContextState, dict]:
        """The one context vector every step receives: the bottleneck."""
        context = state.context
        logits, state, _ = self.decode_step(prev_tokens, state)
        return logits, state, {"scorer": None, "context": context[:, None]}

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                need_weights: bool = False, embedded: Tensor | None = None,
                positions: Tensor | None = None) -> tuple[Tensor, None]:
        state = self.init_state(self.encode(src, src_lengths, embedded))
        logits, _ = self._decode(self.dropout(self.tgt_embed(tgt_in)), state, positions)
        return logits, None


class AttentionSeq2Seq(RNNModelBase):
    """RNN encoder-decoder with Luong (dot/general/concat) or Bahdanau (additive) attention.

    Luong: hₜ = RNN(yₜ₋₁ [; h̃ₜ₋₁ with input feeding]), then attend with hₜ.
    Bahdanau: attend with sₜ₋₁ first, then sₜ = RNN([yₜ₋₁; cₜ]).
    Both: h̃ₜ = tanh(W_c [cₜ; hₜ]) (step 5), logits = W_s h̃ₜ.
    """

    def __init__(self, m: ModelConfig, src_vocab: int, tgt_vocab: int, share_src: bool = False):
        memory = m.enc_hidden * (2 if m.bidirectional else 1)
        bahdanau = m.attention == "additive"
        input_feeding = m.input_feeding and not bahdanau
        out_size = m.emb_size if m.tie_embeddings else m.dec_hidden        # size of h̃ₜ
        dec_in = m.emb_size + (memory if bahdanau else out_size if input_feeding else 0)
        super().__init__(m, src_vocab, tgt_vocab, share_src=share_src, dec_input_size=dec_in,
                         out_size=out_size)
        self.bahdanau, self.input_feeding = bahdanau, input_feeding
        self.attention_type = m.attention
        self.attention = rnn_attention(m.attention, m.dec_hidden, memory)
        self.combine = nn.Linear(memory + m.dec_hidden, out_size, bias=False)   # W_c

    def encode(self, src: Tensor, src_lengths: Tensor, embedded: Tensor | None = None
               ) -> EncoderOutput:
        memory, finals = self.encoder(src, src_lengths, embedded)         # 1. (B, S, D_mem)
        return EncoderOutput(memory, padding_mask(src, src_lengths), self._initial_hidden(finals))

    def init_state(self, enc: EncoderOutput) -> AttentionState:
        feed = (enc.memory.new_zeros(enc.memory.size(0), self.combine.out_features)
                if self.input_feeding else None)
        return AttentionState(**self._hidden_start(enc),
                              keys=self.attention.project_keys(enc.memory), values=enc.memory,
                              mask=enc.mask, feed=feed)

    def _step(self, emb: Tensor, state: AttentionState, trace: dict | None = None
              ) -> tuple[Tensor, AttentionState, Tensor]:
        """One decoder step. emb (B, E) -> h̃ₜ (B, H) (the output layer's input), state,
        weights (B, S); ``trace`` receives every step's numbers (:meth:`explain_step`)."""
        attend = lambda q: self.attention(q[:, None], state.keys, state.values,  # noqa: E731
                                          state.mask, trace)
        if self.bahdanau:
            context, weights = attend(state.h[:, -1])                     # query sₜ₋₁
            x = torch.cat([emb, context[:, 0]], -1)
            out, hidden = self.decoder(x[:, None], self._hidden_in(state))
        else:
            x = torch.cat([emb, state.feed], -1) if self.input_feeding else emb
            out, hidden = self.decoder(x[:, None], self._hidden_in(state))
            context, weights = attend(out[:, 0])                          # query hₜ
        h_tilde = torch.tanh(self.combine(torch.cat([context, out], -1)))[:, 0]  # 5.
        state = self._hidden_out(hidden, state)
        if self.input_feeding:
            state = replace(state, feed=h_tilde)
        if trace is not None:
            trace.update(scorer=self.attention_type, decoder_state=out[:, 0], combined=h_tilde)
        return h_tilde, state, weights[:, 0]

    def decode_step(self, prev_tokens: Tensor, state: AttentionState,
                    need_weights: bool = False) -> tuple[Tensor, AttentionState, Tensor]:
        h_tilde, state, weights = self._step(self.tgt_embed(prev_tokens), state)
        return self._project(h_tilde), state, weights

    def explain_step(self, prev_tokens: Tensor, state: AttentionState
                     ) -> tuple[Tensor, AttentionState, dict]:
        trace: dict = {}
        h_tilde, state, _ = self._step(self.tgt_embed(prev_tokens), state, trace)
        return self._project(h_tilde), state, trace

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                need_weights: bool = False, embedded: Tensor | None = None,
                positions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        state = self.init_state(self.encode(src, src_lengths, embedded))
        emb = self.dropout(self.tgt_embed(tgt_in))                        # (B, T, E)
        if not self.input_feeding and not self.bahdanau:
            # Nothing feeds back: run the RNN over the whole target, attend all at once.
            out, _ = self.decoder(emb, self._hidden_in(state))            # (B, T, H)
            context, weights = self.attention(out, state.keys, state.values, state.mask)
            h_tilde = torch.tanh(self.combine(torch.cat([context, out], -1)))
            return self._project(h_tilde, positions), weights
        hidden, weights = [], []
        for t in range(emb.size(1)):
            h_tilde, state, w = self._step(emb[:, t], state)
            hidden.append(h_tilde)
            weights.append(w)
        return self._project(torch.stack(hidden, 1), positions), torch.stack(weights, 1)
