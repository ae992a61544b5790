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
from .decoder_only import DecoderOnlyTranslator
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
    if m.arch in ("transformer", "decoder-only"):
        _check_heads(m)
    if m.reverse_source and m.arch not in ("seq2seq", "rnn"):
        raise ConfigError(f"model.reverse_source applies to RNN encoders (seq2seq, rnn), not "
                          f"to model.arch {m.arch}; remove it")


def _check_heads(m: ModelConfig) -> None:
    if m.d_model % m.heads:
        raise ConfigError(f"model.d_model {m.d_model} must be divisible by model.heads "
                          f"{m.heads}")


def build_model(m: ModelConfig, src_vocab: int, tgt_vocab: int, joint_vocab: bool = False
                ) -> Seq2SeqModel:
    """The sequence-to-sequence model a config describes; source embeddings are shared with
    a joint vocabulary."""
    _check(m)
    family = {"seq2seq": Seq2Seq, "rnn": AttentionSeq2Seq,
              "decoder-only": DecoderOnlyTranslator}.get(m.arch, Transformer)
    return family(m, src_vocab, tgt_vocab, share_src=joint_vocab and m.tie_embeddings)


def build_encoder(m: ModelConfig, vocab: int, n_labels: int) -> EncoderClassifier:
    """The encoder-only classifier (``n_labels = 0``: its masked-LM pre-training network)."""
    _check_heads(m)
    return EncoderClassifier(m, vocab, n_labels)


def build_lm(m: ModelConfig, vocab: int) -> DecoderLM:
    """The decoder-only language model."""
    _check_heads(m)
    return DecoderLM(m, vocab)


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
