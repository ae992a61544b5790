"""Model families behind one contract (see ``base.py``) and the one model factory.

:func:`build_for_task` is the only place that maps a task and a ``model:`` config
section to a network: training builds a fresh model with it, and a run directory
rebuilds the same network to load its weights.
"""

from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from .base import CausalLM, EncoderOutput, Seq2SeqModel, select_state
from .heads import DecoderLM, EncoderClassifier
from .rnn import AttentionSeq2Seq, Seq2Seq
from .transformer import Transformer

__all__ = ["CausalLM", "EncoderOutput", "Seq2SeqModel", "select_state", "build_model",
           "build_encoder", "build_lm", "build_for_task"]


def _check(m: ModelConfig) -> None:
    memory = m.enc_hidden * (2 if m.bidirectional else 1)
    if m.arch == "rnn" and m.attention == "dot" and memory != m.dec_hidden:
        raise ConfigError(f"model.attention dot needs dec_hidden equal to the encoder output "
                          f"size ({memory} = enc_hidden x directions), got {m.dec_hidden}; "
                          "change the sizes or use general/concat/additive")
    if m.arch == "transformer":
        _check_heads(m)


def _check_heads(m: ModelConfig) -> None:
    if m.d_model % m.heads:
        raise ConfigError(f"model.d_model {m.d_model} must be divisible by model.heads "
                          f"{m.heads}")


def _transformer_sizes(m: ModelConfig) -> dict:
    return dict(d_model=m.d_model, heads=m.heads, ffn=m.ffn, dropout=m.dropout, norm=m.norm,
                positions=m.positions, max_positions=m.max_positions,
                attention_dropout=m.attention_dropout, activation_dropout=m.activation_dropout)


def build_model(m: ModelConfig, src_vocab: int, tgt_vocab: int, joint_vocab: bool = False
                ) -> Seq2SeqModel:
    """The sequence-to-sequence model a config describes; source embeddings are shared with
    a joint vocabulary."""
    _check(m)
    share = joint_vocab and m.tie_embeddings
    if m.arch in ("seq2seq", "rnn"):
        rnn = dict(emb_size=m.emb_size, enc_hidden=m.enc_hidden, dec_hidden=m.dec_hidden,
                   enc_layers=m.enc_layers, dec_layers=m.dec_layers,
                   bidirectional=m.bidirectional, dropout=m.dropout,
                   tie_embeddings=m.tie_embeddings, share_src=share,
                   forget_bias=m.forget_bias)
        if m.arch == "seq2seq":
            return Seq2Seq(src_vocab, tgt_vocab, m.rnn_type, feed_context=m.feed_context, **rnn)
        return AttentionSeq2Seq(src_vocab, tgt_vocab, m.rnn_type, m.attention,
                                input_feeding=m.input_feeding, **rnn)
    return Transformer(src_vocab, tgt_vocab, enc_layers=m.enc_layers, dec_layers=m.dec_layers,
                       tie_embeddings=m.tie_embeddings, share_src=share,
                       **_transformer_sizes(m))


def build_encoder(m: ModelConfig, vocab: int, n_labels: int) -> EncoderClassifier:
    """The encoder-only classifier (``n_labels = 0``: its masked-LM pre-training network)."""
    _check_heads(m)
    return EncoderClassifier(vocab, n_labels, layers=m.enc_layers, pooling=m.pooling,
                             **_transformer_sizes(m))


def build_lm(m: ModelConfig, vocab: int) -> DecoderLM:
    """The decoder-only language model."""
    _check_heads(m)
    return DecoderLM(vocab, layers=m.dec_layers, **_transformer_sizes(m))


def build_for_task(task: str, m: ModelConfig, *, src_vocab: int, tgt_vocab: int,
                   joint_vocab: bool = False, n_labels: int = 0) -> nn.Module:
    """The untrained network for ``task`` (translate, classify, mlm or lm)."""
    if task == "translate":
        return build_model(m, src_vocab, tgt_vocab, joint_vocab)
    if task == "classify":
        return build_encoder(m, src_vocab, n_labels)
    if task == "mlm":
        return build_encoder(m, src_vocab, 0)
    if task == "lm":
        return build_lm(m, tgt_vocab)
    raise ConfigError(f"data.task {task!r} is unknown")
