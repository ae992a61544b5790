"""The learning-rate schedule: a pure function of the step, the training time and the
plateau scale, so a resumed run continues it exactly."""

from __future__ import annotations

import math

from ..config import Config


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
