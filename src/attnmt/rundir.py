"""Run directories and safe checkpoints.

A run directory holds everything needed to translate:

    config.yaml            the resolved config
    vocab/                 the tokenizers (joint.model, or src.* and tgt.*)
    checkpoints/           step-NNNNNNN.safetensors (weights) + .train.pt (optimizer, RNG,
                           data position), best.safetensors, latest.json, best.json
    checkpoints/kept/      step-NNNNNNN.safetensors every ``train.keep_every`` updates
                           (weights only, never deleted: the training timeline)
    metrics.jsonl          one JSON object per log line

Weights are safetensors (no pickle). Every file is written atomically: to a
temporary name, fsync'd, then renamed — a run killed at any moment leaves either
the old or the new file, never half of one. A checkpoint is one transaction:
weights, training state and (when better) the best copy are written first, and
``latest.json`` last — it is the commit point, so a kill anywhere before it
resumes from the previous checkpoint with the previous best. A checkpoint whose
files do not load (truncated, corrupt) is skipped for the newest one that does.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_model, save_model

from .config import Config, config_from_dict
from .data.registry import resolve_dir
from .data.tokenizers import Vocabs
from .errors import UserError, WrongTaskError
from .models import Seq2SeqModel, build_for_task
from .models.adapters import apply_finetuning, merge_lora


class DiskFullError(UserError):
    """The disk (or the file-size limit) ran out while writing; the old file is intact."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)``, fsync ``tmp``, rename it onto ``path``, fsync the folder.

    A full disk removes the partial temporary file and raises :class:`DiskFullError`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except Exception as e:
        tmp.unlink(missing_ok=True)
        if _out_of_space(e):
            raise DiskFullError(f"the disk is full (or the file size limit reached) while "
                                f"writing {path}") from None
        raise
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


SPACE_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _out_of_space(e: Exception) -> bool:
    """An OSError for a full disk or file-size limit, or the same from a library's native
    writer (safetensors reports ``os error N`` in its message)."""
    if isinstance(e, OSError):
        return e.errno in SPACE_ERRORS
    return any(f"os error {n})" in str(e) for n in SPACE_ERRORS)


def save_torch(obj, path: Path) -> None:
    """``torch.save`` through Python's own file writing, so a full disk is an OSError."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.write_bytes(buffer.getbuffer())


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2)))


def ensure_empty_folder(out: Path, force: bool) -> None:
    """An export's output folder must be new or empty, unless ``force`` allows overwriting."""
    if out.exists() and any(out.iterdir()) and not force:
        raise UserError(f"{out} is not empty; choose another folder or pass --force")


def _weight_steps(folder: Path) -> list[int]:
    """The steps of the ``step-NNNNNNN.safetensors`` files in ``folder``, oldest first."""
    return sorted(int(p.name[5:12]) for p in folder.glob("step-*.safetensors")
                  if p.name[5:12].isdigit())


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
    def eval_dir(self) -> Path:
        """``eval/``: what ``attnmt evaluate`` and a study wrote (scores and hypotheses)."""
        return self.path / "eval"

    def eval_results(self) -> list[dict]:
        """Every score file of ``eval/`` (``SPLIT.beamN[.int8|.bf16].json``), by name."""
        if not self.eval_dir.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.eval_dir.glob("*.json"))]

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
        return _read_json(self.ckpt / "latest.json")

    def best(self) -> dict | None:
        return _read_json(self.ckpt / "best.json")

    def steps(self) -> list[int]:
        """Steps that have both a weights file and a training state, oldest first."""
        return [s for s in _weight_steps(self.ckpt) if self.train_state(s).is_file()]

    def resume_step(self, log: Callable[[str], None] | None = None) -> int | None:
        """The step to resume from: the one ``latest.json`` names if its files load, else the
        newest complete checkpoint (said in one line through ``log``); None when there is
        none."""
        recorded = (self.latest() or {}).get("step")
        candidates = sorted(self.steps(), reverse=True)
        if recorded in candidates:
            candidates = [recorded] + [s for s in candidates if s < recorded]
        for step in candidates:
            if _loads(self.weights(step)) and _state_loads(self.train_state(step)):
                if step != recorded and log:
                    what = (f"the checkpoint of step {recorded}" if recorded is not None
                            else "latest.json")
                    log(f"warning: {what} is missing or broken; resuming from step {step}, "
                        "the newest that loads")
                return step
        return None

    def data_folder(self, cfg: Config, data_dir: str | Path | None = None,
                    log: Callable[[str], None] = print) -> Path:
        """The folder of the run's split files: ``data_dir`` when given, else the one its
        config names (a one-line error when that is gone, e.g. in a copied run)."""
        if data_dir:
            return Path(data_dir)
        if cfg.data.dir and not Path(cfg.data.dir).is_dir() and not cfg.data.dataset:
            raise UserError(f"the data folder of {self.path} ({cfg.data.dir}) does not exist "
                            "(was the run moved or copied?); pass --data DIR")
        return resolve_dir(cfg.data, self.path / "data", log=log)

    def records(self, kind: str | None = None) -> list[dict]:
        """The records of ``metrics.jsonl`` in order (only those of type ``kind``, e.g.
        ``valid``, ``train`` or ``mark``, when given); none before the first update."""
        if not self.metrics_file.is_file():
            return []
        rows = [json.loads(line) for line in self.metrics_file.read_text().splitlines()
                if line.strip()]
        return [r for r in rows if kind is None or r.get("type") == kind]

    def truncate_metrics(self, step: int) -> None:
        """Drop metrics records after ``step`` (they belong to updates a resume repeats)."""
        if not self.metrics_file.is_file():
            return
        kept = [line for line in self.metrics_file.read_text().splitlines()
                if line.strip() and _record_step(line) <= step]
        atomic_write(self.metrics_file, lambda tmp: tmp.write_text(
            "".join(line + "\n" for line in kept)))

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
                        keep_last: int, best: dict | None = None, keep_every: int = 0) -> None:
        """One checkpoint transaction: weights, training state, the best copy (when ``best``
        is given: what made it best) and, last, ``latest.json``; then old steps go. With
        ``keep_every``, the first checkpoint at or past each multiple is also kept."""
        atomic_write(self.weights(step), lambda tmp: save_model(model, str(tmp)))
        kept = self.kept_steps() if keep_every else []
        if keep_every and (not kept or step // keep_every > max(kept) // keep_every):
            atomic_write(self.kept_weights(step),
                         lambda tmp: shutil.copyfile(self.weights(step), tmp))
        atomic_write(self.train_state(step), lambda tmp: save_torch(train_state, tmp))
        if best is not None:
            self.mark_best(step, best)
        write_json(self.ckpt / "latest.json", {"step": step})
        for old in self.steps()[:-keep_last]:
            self.weights(old).unlink(missing_ok=True)
            self.train_state(old).unlink(missing_ok=True)

    def kept_weights(self, step: int) -> Path:
        return self.ckpt / "kept" / f"step-{step:07d}.safetensors"

    def kept_steps(self) -> list[int]:
        """Steps whose weights were kept for the training timeline, oldest first."""
        return _weight_steps(self.ckpt / "kept")

    def keep_weights(self, model: Seq2SeqModel, step: int) -> None:
        atomic_write(self.kept_weights(step), lambda tmp: save_model(model, str(tmp)))

    def mark_best(self, step: int, info: dict) -> None:
        atomic_write(self.ckpt / "best.safetensors",
                     lambda tmp: shutil.copyfile(self.weights(step), tmp))
        write_json(self.ckpt / "best.json", {"step": step, **info})

    def checkpoint_file(self, which: str = "best") -> Path:
        """``best``, ``last``, ``averaged``, or a step number (a recent checkpoint or a
        kept one). ``best`` and ``last`` fall
        back to each other when their file is missing or does not load (said on stderr)."""
        if which in ("best", "last"):
            order = [self._best_weights, self._last_weights]
            first, second = order if which == "best" else order[::-1]
            primary = first()
            found = primary or second()
            broken = which == "best" and (self.ckpt / "best.safetensors").is_file() or \
                which == "last" and self.latest() is not None
            if found and primary is None and broken:
                warnings.warn(f"the {which} checkpoint of {self.path} does not load; using "
                              f"{found.name}", stacklevel=2)
        else:
            f = self.ckpt / f"{which}.safetensors"
            if which.isdigit():
                f = self.weights(int(which))
                f = f if f.is_file() else self.kept_weights(int(which))
            found = f if f.is_file() and _loads(f) else None
        if found is None:
            raise UserError(f"{self.path} has no checkpoint {which!r} that loads; train it "
                            "first (attnmt train CONFIG --out DIR)")
        return found

    def _best_weights(self) -> Path | None:
        f = self.ckpt / "best.safetensors"
        return f if f.is_file() and _loads(f) else None

    def _last_weights(self) -> Path | None:
        """The weights ``latest.json`` names, else the newest step's weights that load."""
        recorded = (self.latest() or {}).get("step")
        steps = _weight_steps(self.ckpt)[::-1]
        if recorded in steps:
            steps = [recorded] + [s for s in steps if s < recorded]
        return next((self.weights(s) for s in steps if _loads(self.weights(s))), None)

    def load(self, which: str = "best", device: str | torch.device = "cpu",
             task: str | None = None
             ) -> tuple[Config, Vocabs, Seq2SeqModel | torch.nn.Module]:
        """Config, vocabularies and model with weights, ready for inference; with ``task``,
        a run of another task is a one-line error that says what to use it with."""
        cfg = self.load_config()
        if task and cfg.data.task != task:
            raise WrongTaskError(f"{self.path} holds a {cfg.data.task} model, not a {task} "
                                 "model", task=cfg.data.task)
        if not Vocabs.exists(self.vocab_dir):
            raise UserError(f"{self.vocab_dir} holds no vocabulary; the run directory is "
                            "incomplete — retrain it")
        vocabs = Vocabs.load(self.vocab_dir)
        model = build_for_task(cfg.data.task, cfg.model, src_vocab=len(vocabs.src),
                               tgt_vocab=len(vocabs.tgt), joint_vocab=vocabs.joint,
                               n_labels=len(self.labels()))
        path = self.checkpoint_file(which)
        if cfg.train.lora:              # the checkpoint holds the adapters apart: merged below
            apply_finetuning(model, cfg.train)
        try:
            load_model(model, str(path), device=str(device))
        except Exception as e:  # a truncated or foreign file
            raise UserError(f"cannot load {path}: {e}") from None
        model = merge_lora(model) if cfg.train.lora else model
        return cfg, vocabs, model.to(device).eval()


def average_checkpoints(run: RunDir, last: int, kept: bool = False) -> tuple[list[Path], Path]:
    """Average the weights of the run's last ``last`` step checkpoints (with ``kept``: its
    last kept ones, e.g. the time marks of ``train.save_every_minutes``) into
    ``checkpoints/averaged.safetensors``; returns the inputs and the output file."""
    from safetensors.torch import load_file, save_file

    folder = run.ckpt / "kept" if kept else run.ckpt
    files = sorted(folder.glob("step-*.safetensors"))[-last:]
    if not files:
        raise UserError(f"{folder} has no step checkpoints to average")
    total = None
    for f in files:
        weights = load_file(str(f))
        total = weights if total is None else {k: total[k] + weights[k] for k in total}
    avg = {k: (v / len(files)).contiguous() for k, v in total.items()}
    out = run.ckpt / "averaged.safetensors"
    atomic_write(out, lambda tmp: save_file(avg, str(tmp)))
    return files, out


def _read_json(path: Path) -> dict | None:
    """A small JSON record, or None when it is missing or unreadable (a torn write cannot
    happen with :func:`atomic_write`, but a hand-edited or damaged file can)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _loads(path: Path) -> bool:
    """Whether a safetensors file is complete: its header parses and every tensor it
    lists lies inside the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            for key in f.keys():
                f.get_slice(key)
        return True
    except Exception:
        return False


def _state_loads(path: Path) -> bool:
    try:
        torch.load(path, weights_only=True, map_location="cpu")
        return True
    except Exception:
        return False


def _record_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return float("inf")     # an unreadable (torn) line goes


def study_runs(folder: str | Path) -> dict[str, Path]:
    """The run directories of a study folder (what ``attnmt compare`` writes: ``runs/NAME``
    with a ``config.yaml`` each), by name; empty for anything else."""
    runs = Path(folder) / "runs"
    if (Path(folder) / "config.yaml").is_file() or not runs.is_dir():
        return {}
    return {p.name: p for p in sorted(runs.iterdir()) if (p / "config.yaml").is_file()}


def load_matching_weights(model: torch.nn.Module, run_dir: str | Path) -> str:
    """Load the best weights of ``run_dir`` whose names and shapes match ``model``'s
    (``train.init_from``); says how many, or a one-line error when none fit."""
    from safetensors.torch import load_file

    source = RunDir(run_dir)               # (a LoRA run: its adapters merged into the weights)
    weights = source.load()[2].state_dict() if source.load_config().train.lora else \
        load_file(str(source.checkpoint_file("best")))
    own = model.state_dict()
    matched = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise UserError(f"train.init_from: no weights of {run_dir} fit this model")
    model.load_state_dict(matched, strict=False)
    return f"initialised {len(matched)} of {len(own)} tensors from {run_dir}"

