"""What a run carries from update to update and across a resume.

:class:`Progress` is saved with every checkpoint; :func:`lr_at` is the learning-rate
schedule (a pure function of the step, so a resumed run continues it exactly);
:func:`changed_keys` and :data:`SAFE_ON_RESUME` decide which settings may differ
when a run is resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import Config


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


def budget_fraction(cfg: Config, step: int, elapsed: float) -> float:
    """How far a run is through its budget after warm-up, 0 to 1: the further of
    ``max_steps`` (counted from the end of warm-up) and ``max_minutes`` (wall-clock
    training time), so a decaying schedule ends where the run does."""
    t = cfg.train
    by_steps = max(0, step - t.warmup) / max(1, t.max_steps - t.warmup)
    by_time = elapsed / (t.max_minutes * 60) if t.max_minutes else 0.0
    return min(1.0, max(by_steps, by_time))


def lr_at(cfg: Config, step: int, scale: float, elapsed: float = 0.0) -> float:
    """The learning rate for update ``step`` (1-based) after ``elapsed`` seconds of
    training. ``cosine`` and ``linear`` decay to zero over the run's budget
    (:func:`budget_fraction`): under a time budget the schedule follows the clock, which
    on a fixed machine is what a short run can afford."""
    t, w = cfg.train, cfg.train.warmup
    warm = min(1.0, step / w) if w else 1.0
    if t.schedule == "inverse_sqrt":
        shape = min(step / w, math.sqrt(w / step)) if w else 1.0 / math.sqrt(step)
    elif t.schedule == "cosine":
        shape = warm * 0.5 * (1 + math.cos(math.pi * budget_fraction(cfg, step, elapsed)))
    elif t.schedule == "linear":
        shape = warm * (1.0 - budget_fraction(cfg, step, elapsed))
    else:  # constant, plateau
        shape = warm
    return t.lr * shape * scale


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
