"""What a run carries from update to update and across a resume.

:class:`Progress` is saved with every checkpoint; :class:`TrainingClock` measures the
training time it records; :func:`check_run_dir`, :func:`changed_keys` and
:data:`SAFE_ON_RESUME` decide whether a run may start in a folder and which settings may
differ when it is resumed.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..config import Config
from ..errors import UserError
from ..rundir import RunDir


@dataclass
class Progress:
    """Everything besides weights and optimizer that a resumed run needs."""

    step: int = 0
    epoch: int = 0
    batch_pos: int = 0
    elapsed: float = 0.0
    tokens: int = 0
    best: float | None = None
    bad_validations: int = 0
    lr_scale: float = 1.0
    marks: int = 0          # time marks passed (train.save_every_minutes)
    history: list = field(default_factory=list)


class TrainingClock:
    """Seconds of training: wall time since the run began (``elapsed`` already trained when
    it resumes), less the time spent writing checkpoints at time marks."""

    def __init__(self, elapsed: float = 0.0):
        self._start = time.time() - elapsed

    def elapsed(self) -> float:
        return time.time() - self._start

    @contextmanager
    def paused(self):
        """Inside: time that does not count as training."""
        begin = time.time()
        try:
            yield
        finally:
            self._start += time.time() - begin


# Keys that may change when a run is resumed: how long it goes on and how it reports,
# never what is trained or on which data.
SAFE_ON_RESUME = {"train.max_steps", "train.max_minutes", "train.max_epochs", "train.patience",
                  "train.valid_every", "train.log_every", "train.keep_last", "train.threads",
                  "train.device", "train.valid_max_sentences", "data.cache_dir", "data.workers"}


def changed_keys(old: Config, new: Config) -> list[str]:
    """``section.key`` of every setting that differs between two configs (the preset name
    is only a label: its keys are compared one by one)."""
    a, b = old.to_dict(), new.to_dict()
    return [f"{section}.{key}" for section in b for key in b[section]
            if a.get(section, {}).get(key) != b[section][key]
            and f"{section}.{key}" != "model.preset"]


def check_run_dir(run: RunDir, cfg: Config, resume: bool) -> None:
    """A new run needs an unused folder; a resumed one a checkpoint and the same settings
    (except those in :data:`SAFE_ON_RESUME`)."""
    has_checkpoint = bool(run.steps())
    if resume and not has_checkpoint:
        raise UserError(f"--resume: {run.path} has no checkpoint to resume from")
    if not resume and has_checkpoint:
        raise UserError(f"{run.path} already holds a run; pass --resume to continue "
                        "it or choose another --out")
    if resume:
        changed = [k for k in changed_keys(run.load_config(), cfg)
                   if k not in SAFE_ON_RESUME and not k.startswith("decode.")]
        if changed:
            raise UserError(f"--resume: {', '.join(changed)} differ from the run in "
                            f"{run.path}; resume with its settings or train into another "
                            "--out (only budgets, reporting and decoding may change)")
