"""Typed, validated configuration: data, model, training and decoding.

A config is four dataclasses loaded from YAML. Every field is documented next to
its declaration; a bad key or value raises :class:`ConfigError` with a one-line
message naming the key, the file and what would be valid. Command-line
overrides (``--set train.max_steps=100``) go through the same validation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config_checks import (
    check_betas,
    check_corpora,
    check_filter,
    check_freeze,
    check_lora,
    check_synth,
    check_together,
    parse_override,
    suggest,
)
from .errors import ConfigError
from .presets import preset_config
from .textio import read_utf8

HUGE = 10**12
MAX_WIDTH = 65536   # widest embedding, hidden state or model size
MAX_LAYERS = 256   # the upper bound of a count or size no field states its own bound for


def _f(default: Any, help: str, choices: tuple | None = None, min: float | None = None,
       max: float | None = None, check: Any = None) -> Any:
    """A dataclass field with its documentation and its valid values (``check`` validates a
    list or mapping value and raises :class:`ConfigError`); a number without its own upper
    bound gets :data:`HUGE`."""
    if max is None and isinstance(default, (int, float)) and not isinstance(default, bool):
        max = HUGE
    meta = {"help": help, "choices": choices, "min": min, "max": max, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


TASK_NAMES = ("translate", "classify", "lm", "mlm")


@dataclass
class DataConfig:
    task: str = _f("translate", "what is learned: translate (pairs), classify (text<TAB>label "
                   "in {split}.tsv), mlm or lm (plain text in {split}.{src})",
                   choices=TASK_NAMES)
    dataset: str | None = _f(None, "registered dataset that fills `dir` when it is empty: "
                             "multi30k, or a synthetic task (numbers, dates, copy, reverse)",
                             choices=(None, "multi30k", "numbers", "dates", "copy", "reverse"))
    dir: str | None = _f(None, "folder of aligned files {split}.{lang}; relative to the config")
    src: str = _f("de", "source language suffix of the files")
    tgt: str = _f("en", "target language suffix of the files")
    train: str = _f("train", "name of the training split")
    valid: str = _f("val", "name of the validation split")
    test: str = _f("test", "name of the test split")
    tokenizer: str = _f("sentencepiece", "how text becomes tokens",
                        choices=("sentencepiece", "char", "word"))
    spm_type: str = _f("unigram", "SentencePiece model type", choices=("unigram", "bpe"))
    vocab_size: int = _f(8000, "SentencePiece vocabulary size (upper bound)", min=16,
                         max=1_000_000)
    joint_vocab: bool = _f(True, "one vocabulary for source and target (enables tying "
                           "source embeddings too)")
    max_len: int = _f(100, "lines longer than this many tokens are skipped (and counted)", min=1,
                      max=1_000_000)
    cache_dir: str | None = _f(None, "where prepared (tokenised, memory-mapped) data is kept; "
                               "default $ATTNMT_CACHE/prepared or ~/.cache/attnmt/prepared")
    sample_size: int = _f(1_000_000, "lines sampled uniformly from the training split to "
                          "train the tokenizer (all of them when fewer)", min=1000)
    workers: int = _f(0, "processes that encode the corpus when preparing it (0 = every "
                      "core)", min=0, max=1024)
    synth: dict = _f({}, "options for a synthetic dataset, as for `attnmt data synth`",
                     check=check_synth)
    format: str = _f("parallel", "translate: a split's pairs in {split}.{src} + {split}.{tgt}, "
                     "{split}.tsv (source<TAB>target) or {split}.jsonl ({src: .., tgt: ..} "
                     "per line)", choices=("parallel", "tsv", "jsonl"))
    corpora: list = _f([], "translate: several training corpora, each a file stem (relative "
                       "to dir, in data.format) with a sampling weight: an epoch holds each "
                       "pair weight times on average — [{path: europarl, weight: 1}, {path: "
                       "crawl, weight: 0.5}]; replaces the train split", check=check_corpora)
    filter: dict = _f({}, "translate: filters on the training pairs, each counted: min_len "
                      "and ratio (in tokens), dedup, copies (source = target), langid (a "
                      "language-ID classifier run: the sides must read as src and tgt)",
                      check=check_filter)
    join: float = _f(0.0, "translate: this fraction of the training pairs is joined anew each "
                     "epoch, 2 to join_max random pairs at a time, into long examples made of "
                     "real sentences; 0 = off", min=0.0, max=1.0)
    join_max: int = _f(4, "the most pairs data.join puts into one example", min=2, max=64)
    spm_alpha: float = _f(0.0, "subword sampling (Kudo 2018): training sentences segmented "
                          "anew per batch with this smoothing; 0 = off", min=0.0, max=1.0)

    def split_name(self, split: str) -> str:
        """The file stem of a split asked for by role (``test``, ``val`` or ``valid``), or
        ``split`` itself when it names a file stem already (e.g. ``test_2017_flickr``)."""
        return {"test": self.test, "val": self.valid, "valid": self.valid}.get(split, split)


@dataclass
class ModelConfig:
    preset: str | None = _f(None, "a named architecture (see `attnmt presets`); keys set "
                            "here override it")
    arch: str = _f("transformer", "model family (decoder-only: source, separator and "
                   "target in one causal stack of dec_layers)",
                   choices=("seq2seq", "rnn", "transformer", "decoder-only"))
    # RNN families
    rnn_type: str = _f("lstm", "recurrent cell", choices=("rnn", "lstm", "gru"))
    attention: str = _f("dot", "RNN attention scoring function (arch rnn)",
                        choices=("dot", "general", "concat", "additive"))
    emb_size: int = _f(256, "embedding size of RNN models", min=1, max=MAX_WIDTH)
    enc_hidden: int = _f(256, "RNN encoder hidden size per direction", min=1,
                        max=MAX_WIDTH)
    dec_hidden: int = _f(512, "RNN decoder hidden size", min=1, max=MAX_WIDTH)
    enc_layers: int = _f(1, "encoder layers", min=1, max=MAX_LAYERS)
    dec_layers: int = _f(1, "decoder layers", min=1, max=MAX_LAYERS)
    bidirectional: bool = _f(True, "bidirectional RNN encoder")
    input_feeding: bool = _f(True, "Luong input feeding: previous attentional state is "
                             "concatenated to the next decoder input")
    forget_bias: float = _f(1.0, "LSTM forget-gate bias at initialisation (Gers et al. 2000; "
                            "Jozefowicz et al. 2015): 1 keeps the cell's memory, and its "
                            "gradient, alive across long sequences from the first update; "
                            "0 is PyTorch's default", min=-100.0, max=100.0)
    feed_context: bool = _f(False, "seq2seq only: context vector also fed to every decoder "
                            "step and to the output layer (Cho et al. 2014)")
    reverse_source: bool = _f(False, "RNN encoders read each source backwards, its end-of-"
                              "sentence mark last (Sutskever et al. 2014)")
    # Transformer
    d_model: int = _f(256, "Transformer model size", min=8, max=MAX_WIDTH)
    heads: int = _f(4, "attention heads", min=1, max=1024)
    ffn: int = _f(1024, "position-wise feed-forward inner size", min=1,
                   max=4 * MAX_WIDTH)
    norm: str = _f("pre", "layer norm placement: pre (stable) or post (Vaswani 2017)",
                   choices=("pre", "post"))
    positions: str = _f("sinusoidal", "added to the embeddings or in self-attention (rope, "
                        "alibi)", choices=("sinusoidal", "learned", "rope", "alibi"))
    activation: str = _f("relu", "Transformer: the feed-forward layers' activation (swish = "
                         "SiLU, as in Marian; gelu as in BERT)", choices=("relu", "gelu", "swish"))
    scale_embedding: bool = _f(True, "Transformer: token embeddings multiplied by √d_model "
                               "(Vaswani et al.); false as in some imported checkpoints")
    output_bias: bool = _f(False, "Transformer: a bias on the output layer (Marian's and "
                           "Pegasus's final_logits_bias; set by `attnmt import`)")
    max_positions: int = _f(1024, "longest sequence the model accepts", min=8,
                             max=1_000_000)
    pooling: str = _f("cls", "classifier: sentence vector from the [CLS] (<s>) position or "
                      "the mean of all positions", choices=("cls", "mean"))
    # shared
    dropout: float = _f(0.1, "dropout probability (embeddings, residual connections, RNN "
                        "outputs)", min=0.0, max=0.9)
    attention_dropout: float = _f(0.0, "Transformer: dropout on attention weights", min=0.0,
                                  max=0.9)
    activation_dropout: float = _f(0.0, "Transformer: dropout after the FFN activation",
                                   min=0.0, max=0.9)
    tie_embeddings: bool = _f(True, "tie decoder input, output (and, with a joint vocabulary, "
                              "source) embeddings")


@dataclass
class TrainConfig:
    seed: int = _f(1, "random seed (data order, initialisation, dropout)", min=0, max=2**32 - 1)
    max_tokens: int = _f(4096, "token budget of one batch: sentences x longest padded length",
                         min=16)
    accum: int = _f(1, "gradient accumulation steps per update", min=1)
    max_steps: int = _f(10000, "stop after this many updates", min=1)
    max_minutes: float = _f(0.0, "stop after this many wall-clock minutes (0 = no limit)", min=0)
    max_epochs: int = _f(1000, "stop after this many epochs", min=1)
    optimizer: str = _f("adamw", "optimizer", choices=("adam", "adamw"))
    lr: float = _f(5e-4, "peak learning rate", min=0.0, max=10.0)
    betas: list = _f([0.9, 0.98], "Adam betas", check=check_betas)
    weight_decay: float = _f(0.0, "decoupled weight decay (adamw)", min=0.0)
    schedule: str = _f("inverse_sqrt", "learning-rate schedule after the linear warm-up: "
                       "inverse_sqrt; cosine or linear decay to zero over the run's budget "
                       "(max_steps or max_minutes, whichever ends it first); constant; "
                       "plateau (validation-driven)",
                       choices=("inverse_sqrt", "constant", "cosine", "linear", "plateau"))
    warmup: int = _f(1000, "linear warm-up steps", min=0)
    plateau_factor: float = _f(0.5, "plateau: multiply lr by this when validation stalls",
                               min=0.0, max=1.0)
    plateau_patience: int = _f(2, "plateau: validations without improvement before decay",
                               min=0)
    ema: float = _f(0.0, "decay of an exponential moving average of the weights (e.g. "
                    "0.995: about the last 200 updates); validation, checkpoints and "
                    "translation use the average; 0 = off", min=0.0, max=0.99999)
    label_smoothing: float = _f(0.1, "label smoothing of the cross-entropy", min=0.0, max=0.99)
    clip_norm: float = _f(1.0, "gradient clipping max norm (0 = off)", min=0.0)
    valid_every: int = _f(500, "validate every this many updates", min=1)
    valid_bleu: bool = _f(True, "greedy-decode the validation set for BLEU/chrF")
    valid_max_sentences: int = _f(0, "decode only the first N validation sentences (0 = all)",
                                  min=0)
    best_metric: str = _f("bleu", "metric that picks the best checkpoint and early stopping",
                          choices=("bleu", "chrf", "exact", "loss", "ppl", "accuracy",
                                   "macro_f1"))
    keep_last: int = _f(2, "number of recent checkpoints to keep", min=1)
    save_every_minutes: float = _f(0.0, "also write a checkpoint, kept for good, each time "
                                   "this many minutes of training have passed (saving does "
                                   "not count; a 'mark' record in metrics.jsonl): a "
                                   "time-to-quality curve; 0 = off", min=0.0)
    keep_every: int = _f(0, "also keep the weights every this many updates (the first "
                         "checkpoint at or past each multiple, and step 0) for the explainer's "
                         "training timeline; 0 = off", min=0)
    patience: int = _f(0, "stop after this many validations without improvement (0 = off)",
                       min=0)
    log_every: int = _f(50, "write training metrics every this many updates", min=1)
    init_from: str | None = _f(None, "start from the weights of this run directory (e.g. an "
                               "mlm run, to fine-tune a classifier); matching names are loaded")
    freeze: list = _f([], "parts whose weights stay as they are: embeddings, a top-level "
                      "part (encoder, decoder, ...) or one layer of a stack (encoder.0)",
                      check=check_freeze)
    lora: dict = _f({}, "LoRA adapters, the only trainable weights (Hu et al. 2022; peft): "
                    "{rank: 8, alpha: 16, targets: [attention, ffn], dropout: 0}; merged "
                    "into the weights for decoding and export; {} = off", check=check_lora)
    device: str = _f("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    threads: int = _f(0, "CPU threads for torch (0 = torch's default)", min=0, max=4096)
    precision: str = _f("auto", "matmul precision of training: bf16 autocast (weights and "
                        "optimizer stay float32) or fp32; auto = bf16 on CUDA, fp32 on CPU",
                        choices=("auto", "fp32", "bf16"))


STOPPING = ("current", "bound", "beam")   # beam search's stopping rules (search.beam_search)
PENALTIES = ("gnmt", "average")           # length penalty forms (search.length_penalty)


@dataclass
class DecodeConfig:
    beam: int = _f(5, "beam size (1 = greedy)", min=1, max=64)
    alpha: float = _f(0.6, "length penalty exponent", min=0.0, max=5.0)
    length_penalty: str = _f("gnmt", "how beam search normalises a finished hypothesis's "
                             "log-probability: gnmt = by ((5 + length) / 6)^alpha (Wu et al. "
                             "2016); average = by length^alpha (alpha 1: per-token mean, as "
                             "CTranslate2 and fairseq)", choices=PENALTIES)
    max_len_ratio: float = _f(1.5, "longest output: ratio x source length + 10", min=0.1,
                              max=100.0)
    batch_size: int = _f(64, "sentences decoded together", min=1, max=65536)
    stopping: str = _f("current", "when a sentence leaves the beam: current = when no live "
                       "hypothesis would beat its best finished one by ending now; bound = "
                       "only when none can beat it at any length (exact, slower); beam = "
                       "once `beam` hypotheses have ended (fairseq)",
                       choices=STOPPING)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
                    "decode": DecodeConfig}


def _coerce(section: str, f: dataclasses.Field, value: Any, where: str) -> Any:
    """Check one value against its field's type, choices and range; return it typed."""
    key = f"{section}.{f.name}"
    meta = f.metadata
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if value is None and None in (meta.get("choices") or ()):
        return None
    kind = type(default) if default is not None else str
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
                value = value.lower() in ("true", "yes")
            if not isinstance(value, bool):
                raise ValueError
        elif kind is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
                raise ConfigError(f"{key} must be a whole number, got {value!r} ({where})")
            value = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value!r} ({where})")
        elif kind in (list, dict):
            if not isinstance(value, kind):
                raise ValueError
            check = meta.get("check")
            if check:
                check(key, value, where)
        elif kind is str:
            if value is None and f.name in ("dir", "preset", "init_from", "cache_dir"):
                return None
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            value = str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be {kind.__name__}, got {value!r} ({where})") from None
    choices = meta.get("choices")
    if choices and value not in choices:
        shown = ", ".join(str(c) for c in choices if c is not None)
        raise ConfigError(f"{key} must be one of {shown}, got {value!r} ({where})")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{key} must be in {rng}, got {value!r} ({where})")
    return value


def _apply(cfg: Config, raw: dict, where: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {type(raw).__name__} "
                          f"({where})")
    for section, values in raw.items():
        if section not in _SECTION_CLASSES:
            hint = suggest(str(section), list(SECTIONS))
            raise ConfigError(f"{section} is not a section; {hint} ({where})")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{section} must be a mapping of keys ({where})")
        target = getattr(cfg, section)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"{section}.{key} is not a key; "
                                  f"{suggest(str(key), list(fields), section + '.')} ({where})")
            setattr(target, key, _coerce(section, fields[key], value, where))


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = (),
                raw: dict | None = None) -> Config:
    """Load a YAML config (or a dict), apply presets and ``--set`` overrides, validate.

    The model preset is applied first, then the file's model keys, then the
    overrides, so ``--set model.dec_hidden=128`` always wins.
    """
    where = str(path) if path else "config"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            raw = yaml.safe_load(read_utf8(p, ConfigError)) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{p}{line} is not valid YAML") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of sections (data, model, train, "
                          f"decode), got a {type(raw).__name__} ({where})")
    raw = dict(raw or {})
    over: dict[str, dict] = {}
    for text in overrides:
        section, key, value = parse_override(text)
        over.setdefault(section, {})[key] = value
    cfg = Config()
    model_raw = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    preset = over.get("model", {}).get("preset") or model_raw.get("preset")
    if preset:
        _apply(cfg, {"model": preset_config(preset)}, where)
    _apply(cfg, raw, where)
    _apply(cfg, over, "--set")
    check_together(cfg, where)
    if path is not None and cfg.data.dir and not Path(cfg.data.dir).is_absolute():
        cfg.data.dir = str((Path(path).parent / cfg.data.dir).resolve())
    return cfg


def config_from_dict(raw: dict) -> Config:
    """Rebuild a saved, resolved config (as written into a run directory)."""
    raw = {k: dict(v) for k, v in raw.items()}
    raw.get("model", {}).pop("preset", None)  # already resolved into the keys
    cfg = load_config(raw=raw)
    return cfg
