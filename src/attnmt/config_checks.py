"""The checks of config values that are lists, mappings or depend on each other: each
raises :class:`ConfigError` with one line naming the key, the file and what is valid;
and the reading of a command-line override (``--set section.key=value``)."""

from __future__ import annotations

import difflib
import math
from typing import Any

import yaml

from .errors import ConfigError


def check_betas(key: str, value: list, where: str) -> None:
    ok = len(value) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                 and math.isfinite(b) and 0.0 <= b < 1.0 for b in value)
    if not ok:
        raise ConfigError(f"{key} must be two numbers in [0, 1), e.g. [0.9, 0.98], got "
                          f"{value!r} ({where})")


def check_freeze(key: str, value: list, where: str) -> None:
    if not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key} must be a list of part names, e.g. [embeddings, encoder], "
                          f"got {value!r} ({where})")


LORA_KEYS = {"rank", "alpha", "targets", "dropout"}


def check_lora(key: str, value: dict, where: str) -> None:
    unknown = sorted(set(value) - LORA_KEYS)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]} is not a key; valid keys: "
                          f"{', '.join(sorted(LORA_KEYS))} ({where})")
    rank, alpha = value.get("rank", 8), value.get("alpha", 16)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= 4096:
        raise ConfigError(f"{key}.rank must be a whole number in [1, 4096], got {rank!r} "
                          f"({where})")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not \
            (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"{key}.alpha must be a positive number, got {alpha!r} ({where})")
    targets = value.get("targets", ["attention", "ffn"])
    if not isinstance(targets, list) or not targets or \
            not set(targets) <= {"attention", "ffn"}:
        raise ConfigError(f"{key}.targets must be a non-empty list of attention and ffn, got "
                          f"{targets!r} ({where})")
    dropout = value.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
            not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{key}.dropout must be in [0, 1), got {dropout!r} ({where})")


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def check_corpora(key: str, value: list, where: str) -> None:
    for i, corpus in enumerate(value):
        if not isinstance(corpus, dict) or not isinstance(corpus.get("path"), str) or \
                not corpus["path"] or set(corpus) - {"path", "weight"}:
            raise ConfigError(f"{key}[{i}] must be {{path: FILE_STEM, weight: NUMBER}}, got "
                              f"{corpus!r} ({where})")
        weight = corpus.get("weight", 1.0)
        if not number(weight) or weight <= 0:
            raise ConfigError(f"{key}[{i}].weight must be a positive number, got {weight!r} "
                              f"({where})")


FILTER_KEYS = {"min_len": "a whole number of tokens (0 = off)",
               "ratio": "a number >= 1, the longest allowed length ratio (0 = off)",
               "dedup": "true or false", "copies": "true or false",
               "langid": "a language-ID classifier run directory"}


def check_filter(key: str, value: dict, where: str) -> None:
    for name, v in value.items():
        if name not in FILTER_KEYS:
            raise ConfigError(f"{key}.{name} is not a filter; valid filters: "
                              f"{', '.join(FILTER_KEYS)} ({where})")
        ok = {"min_len": isinstance(v, int) and not isinstance(v, bool) and v >= 0,
              "ratio": number(v) and (v == 0 or v >= 1),
              "dedup": isinstance(v, bool), "copies": isinstance(v, bool),
              "langid": v is None or (isinstance(v, str) and bool(v))}[name]
        if not ok:
            raise ConfigError(f"{key}.{name} must be {FILTER_KEYS[name]}, got {v!r} ({where})")


SYNTH_COUNTS = ("n", "n_valid", "n_test", "min_items", "max_items", "test_max_items",
                "max_value")


def check_synth(key: str, value: dict, where: str) -> None:
    for name in SYNTH_COUNTS:
        v = value.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{key}.{name} must be a whole number of at least 1, got {v!r} "
                              f"({where})")


def check_together(cfg: Any, where: str) -> None:
    """Keys that are valid alone but not with each other."""
    d = cfg.data
    if d.spm_alpha and d.tokenizer != "sentencepiece":
        raise ConfigError(f"data.spm_alpha samples SentencePiece segmentations; set "
                          f"data.tokenizer: sentencepiece (it is {d.tokenizer}) ({where})")
    if d.join and d.spm_alpha:
        raise ConfigError(f"data.join and data.spm_alpha cannot be used together yet: joined "
                          f"examples would keep the best segmentation; set one to 0 ({where})")
    if d.task != "translate":
        for key, default in (("format", "parallel"), ("corpora", []), ("filter", {}),
                             ("join", 0.0)):
            if getattr(d, key) != default:
                raise ConfigError(f"data.{key} applies to translation pairs; this config's "
                                  f"data.task is {d.task} ({where})")


def suggest(name: str, valid: list[str], prefix: str = "") -> str:
    """A hint for a mistyped key: the closest valid one, or all of them."""
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        return f"did you mean {prefix}{close[0]}?"
    return "valid keys: " + ", ".join(valid)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``train.max_steps=100`` -> ("train", "max_steps", 100), values parsed as YAML."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override {text!r} must look like section.key=value "
                          "(e.g. train.max_steps=100)")
    path, value = text.split("=", 1)
    section, key = path.strip().split(".", 1)
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return section, key, parsed
