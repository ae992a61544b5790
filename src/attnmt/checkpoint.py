"""Run directories and safe checkpoints.

A run directory holds everything needed to translate:

    config.yaml            the resolved config
    vocab/                 the tokenizers (joint.model, or src.* and tgt.*)
    checkpoints/           step-NNNNNNN.safetensors (weights) + .train.pt (optimizer, RNG,
                           data position), best.safetensors, latest.json, best.json
    metrics.jsonl          one JSON object per log line

Weights are safetensors (no pickle). Every file is written atomically: to a
temporary name, fsync'd, then renamed — a run killed at any moment leaves either
the old or the new file, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_model, save_model

from .config import TASK_USE, Config, config_from_dict
from .data.tokenizers import Vocabs
from .errors import UserError
from .models import Seq2SeqModel, build_for_task


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)``, fsync ``tmp``, rename it onto ``path``, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2)))


class RunDir:
    """Paths and loading helpers of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt = self.path / "checkpoints"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def vocab_dir(self) -> Path:
        return self.path / "vocab"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def weights(self, step: int) -> Path:
        return self.ckpt / f"step-{step:07d}.safetensors"

    def train_state(self, step: int) -> Path:
        return self.ckpt / f"step-{step:07d}.train.pt"

    @property
    def labels_file(self) -> Path:
        return self.path / "labels.json"

    def labels(self) -> list[str]:
        """The classifier's labels (empty for other tasks)."""
        f = self.labels_file
        return json.loads(f.read_text()) if f.is_file() else []

    def latest(self) -> dict | None:
        f = self.ckpt / "latest.json"
        return json.loads(f.read_text()) if f.is_file() else None

    def best(self) -> dict | None:
        f = self.ckpt / "best.json"
        return json.loads(f.read_text()) if f.is_file() else None

    def save_config(self, cfg: Config) -> None:
        atomic_write(self.config_file,
                     lambda tmp: tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))

    def load_config(self) -> Config:
        if not self.path.is_dir():
            raise UserError(f"run directory {self.path} does not exist")
        if not self.config_file.is_file():
            raise UserError(f"{self.path} is not a run directory (no config.yaml); "
                            "train one with `attnmt train CONFIG --out DIR`")
        return config_from_dict(yaml.safe_load(self.config_file.read_text()))

    def save_checkpoint(self, model: Seq2SeqModel, train_state: dict, step: int,
                        keep_last: int) -> None:
        atomic_write(self.weights(step), lambda tmp: save_model(model, str(tmp)))
        atomic_write(self.train_state(step), lambda tmp: torch.save(train_state, tmp))
        write_json(self.ckpt / "latest.json", {"step": step})
        steps = sorted(int(p.name[5:12]) for p in self.ckpt.glob("step-*.safetensors"))
        for old in steps[:-keep_last]:
            self.weights(old).unlink(missing_ok=True)
            self.train_state(old).unlink(missing_ok=True)

    def mark_best(self, step: int, info: dict) -> None:
        atomic_write(self.ckpt / "best.safetensors",
                     lambda tmp: shutil.copyfile(self.weights(step), tmp))
        write_json(self.ckpt / "best.json", {"step": step, **info})

    def checkpoint_file(self, which: str = "best") -> Path:
        """``best``, ``last``, ``averaged``, or a step number; best falls back to last."""
        named = self.ckpt / f"{which}.safetensors"
        latest = self.latest()
        if which != "last" and named.is_file():
            return named
        if which.isdigit():
            f = self.weights(int(which))
        elif which in ("best", "last") and latest:
            f = self.weights(latest["step"])
        else:
            f = None
        if f is None or not f.is_file():
            raise UserError(f"{self.path} has no checkpoint {which!r}; train it first "
                            "(attnmt train CONFIG --out DIR)")
        return f

    def load(self, which: str = "best", device: str | torch.device = "cpu",
             task: str | None = None
             ) -> tuple[Config, Vocabs, Seq2SeqModel | torch.nn.Module]:
        """Config, vocabularies and model with weights, ready for inference; with ``task``,
        a run of another task is a one-line error that says what to use it with."""
        cfg = self.load_config()
        if task and cfg.data.task != task:
            raise UserError(f"{self.path} holds a {cfg.data.task} model, not a {task} model; "
                            f"use {TASK_USE[cfg.data.task]}")
        if not Vocabs.exists(self.vocab_dir):
            raise UserError(f"{self.vocab_dir} holds no vocabulary; the run directory is "
                            "incomplete — retrain it")
        vocabs = Vocabs.load(self.vocab_dir)
        model = build_for_task(cfg.data.task, cfg.model, src_vocab=len(vocabs.src),
                               tgt_vocab=len(vocabs.tgt), joint_vocab=vocabs.joint,
                               n_labels=len(self.labels()))
        path = self.checkpoint_file(which)
        try:
            load_model(model, str(path), device=str(device))
        except Exception as e:  # a truncated or foreign file
            raise UserError(f"cannot load {path}: {e}") from None
        return cfg, vocabs, model.to(device).eval()


def average_checkpoints(run: RunDir, last: int) -> tuple[list[Path], Path]:
    """Average the weights of the run's last ``last`` step checkpoints into
    ``checkpoints/averaged.safetensors``; returns the inputs and the output file."""
    from safetensors.torch import load_file, save_file

    files = sorted(run.ckpt.glob("step-*.safetensors"))[-last:]
    if not files:
        raise UserError(f"{run.path} has no step checkpoints to average")
    total = None
    for f in files:
        weights = load_file(str(f))
        total = weights if total is None else {k: total[k] + weights[k] for k in total}
    avg = {k: (v / len(files)).contiguous() for k, v in total.items()}
    out = run.ckpt / "averaged.safetensors"
    atomic_write(out, lambda tmp: save_file(avg, str(tmp)))
    return files, out
