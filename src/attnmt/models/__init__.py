"""Model families behind one contract (see ``base.py``) and ``build_model``."""

from __future__ import annotations

from ..config import ModelConfig
from ..errors import ConfigError
from .base import EncoderOutput, Seq2SeqModel, select_state
from .presets import PRESETS
from .rnn import AttentionSeq2Seq, Seq2Seq
from .transformer import Transformer

__all__ = ["EncoderOutput", "Seq2SeqModel", "select_state", "build_model", "PRESETS"]


def _check(m: ModelConfig) -> None:
    memory = m.enc_hidden * (2 if m.bidirectional else 1)
    if m.arch == "rnn" and m.attention == "dot" and memory != m.dec_hidden:
        raise ConfigError(f"model.attention dot needs dec_hidden equal to the encoder output "
                          f"size ({memory} = enc_hidden x directions), got {m.dec_hidden}; "
                          "change the sizes or use general/concat/additive")
    if m.arch == "transformer" and m.d_model % m.heads:
        raise ConfigError(f"model.d_model {m.d_model} must be divisible by model.heads "
                          f"{m.heads}")


def build_model(m: ModelConfig, src_vocab: int, tgt_vocab: int, joint_vocab: bool = False
                ) -> Seq2SeqModel:
    """The model a config describes; source embeddings are shared with a joint vocabulary."""
    _check(m)
    share = joint_vocab and m.tie_embeddings
    rnn_sizes = dict(emb_size=m.emb_size, enc_hidden=m.enc_hidden, dec_hidden=m.dec_hidden,
                     enc_layers=m.enc_layers, dec_layers=m.dec_layers,
                     bidirectional=m.bidirectional, dropout=m.dropout,
                     tie_embeddings=m.tie_embeddings, share_src=share)
    if m.arch == "seq2seq":
        return Seq2Seq(src_vocab, tgt_vocab, m.rnn_type, feed_context=m.feed_context,
                       **rnn_sizes)
    if m.arch == "rnn":
        return AttentionSeq2Seq(src_vocab, tgt_vocab, m.rnn_type, m.attention,
                                input_feeding=m.input_feeding, **rnn_sizes)
    return Transformer(src_vocab, tgt_vocab, m.d_model, m.heads, m.ffn, m.enc_layers,
                       m.dec_layers, m.dropout, m.norm, m.positions, m.max_positions,
                       m.tie_embeddings, share, m.attention_dropout, m.activation_dropout)
