"""The moving average of the weights (``train.ema``) and the schedules that decay over a
run's budget."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_TRANSFORMER, config
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from attnmt.config import Config
from attnmt.training.ema import WeightAverage
from attnmt.training.loop import train
from attnmt.training.schedule import lr_at

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics


@settings(max_examples=30, deadline=None)
@given(decay=st.floats(0.5, 0.999), steps=st.integers(1, 12), seed=st.integers(0, 1000))
def test_average_is_the_bias_corrected_weighted_mean_of_the_weights_seen(decay, steps, seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay)
    seen = []
    for t in range(1, steps + 1):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
        seen.append([p.detach().clone() for p in model.parameters()])
        average.update(t)
    coef = [decay ** (steps - i) * (1 - decay) for i in range(1, steps + 1)]
    norm = 1 - decay ** steps
    for k, a in enumerate(average.average):
        expected = sum(c * w[k] for c, w in zip(coef, seen)) / norm
        assert torch.allclose(a, expected, atol=1e-5)


def test_applied_swaps_the_average_in_and_back_out():
    model = torch.nn.Linear(2, 2)
    average = WeightAverage(model, 0.9)
    own = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for a in average.average:
            a.fill_(7.0)
    with average.applied():
        assert all((p == 7.0).all() for p in model.parameters())
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), own))


def test_a_run_with_ema_saves_the_average_and_resumes_exactly(task, tmp_path):
    cfg = config(task, tmp_path / "c.yaml", {**TINY_TRANSFORMER, "dropout": 0.2},
                 max_steps=12, valid_every=6, valid_bleu=False, best_metric="loss", ema=0.8)
    from attnmt.config import load_config

    train(load_config(cfg), tmp_path / "full", quiet=True)
    short = load_config(cfg)
    short.train.max_steps = 6
    train(short, tmp_path / "split", quiet=True)
    train(load_config(cfg), tmp_path / "split", resume=True, quiet=True)
    full, split = (load_file(tmp_path / d / "checkpoints/step-0000012.safetensors")
                   for d in ("full", "split"))
    assert all(torch.equal(full[k], split[k]) for k in full)
    state = torch.load(tmp_path / "full/checkpoints/step-0000012.train.pt", weights_only=True)
    own = state["training_weights"]
    shared = own.keys() & full.keys()          # the file names each tied matrix once
    assert len(shared) >= len(full) - 1
    assert any(not torch.equal(own[k], full[k]) for k in shared)   # the file holds the average
    resumed = torch.load(tmp_path / "split/checkpoints/step-0000012.train.pt",
                         weights_only=True)["training_weights"]
    assert all(torch.equal(own[k], resumed[k]) for k in own)


def _cfg(schedule: str, **train) -> Config:
    cfg = Config()
    cfg.train.schedule, cfg.train.lr, cfg.train.warmup = schedule, 1e-3, 100
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def test_linear_and_cosine_decay_over_a_time_budget():
    for schedule, half in (("linear", 0.5), ("cosine", 0.5)):
        cfg = _cfg(schedule, max_steps=10**9, max_minutes=10.0)
        assert lr_at(cfg, 50, 1.0, elapsed=1.0) == pytest.approx(0.5e-3, rel=0.01)   # warm-up
        assert lr_at(cfg, 400, 1.0, elapsed=300.0) == pytest.approx(half * 1e-3)
        assert lr_at(cfg, 900, 1.0, elapsed=600.0) == 0.0
    cfg = _cfg("cosine", max_minutes=10.0)
    assert lr_at(cfg, 400, 1.0, elapsed=150.0) == pytest.approx(
        1e-3 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_a_step_budget_ends_the_decay_when_it_comes_first():
    cfg = _cfg("linear", max_steps=1100, max_minutes=60.0)
    assert lr_at(cfg, 600, 1.0, elapsed=60.0) == pytest.approx(0.5e-3)     # steps: half
    assert lr_at(cfg, 1100, 1.0, elapsed=60.0) == 0.0
    inverse = _cfg("inverse_sqrt", max_minutes=10.0)            # no budget in its shape
    assert lr_at(inverse, 400, 1.0, elapsed=300.0) == pytest.approx(1e-3 * math.sqrt(100 / 400))
