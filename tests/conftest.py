"""Shared fixtures: tiny synthetic data and the local Multi30k copy (never the network)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# under pytest-xdist (`make test` runs one worker per core) each worker gets its share of the
# cores, so two workers' thread pools do not fight over the same two cores
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, torch.get_num_threads() // WORKERS)
torch.set_num_threads(THREADS)
MULTI30K = Path(os.environ.get("ATTNMT_TEST_MULTI30K", ROOT.parent / "shared/data/multi30k"))
# prepared data goes to a throw-away cache, for this process and the commands it starts
os.environ["ATTNMT_CACHE"] = tempfile.mkdtemp(prefix="attnmt-test-cache-")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests must never reach the internet."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)  # a training run may have set its own; tests stay independent
    yield


@pytest.fixture
def multi30k_dir() -> Path:
    if not (MULTI30K / "train.de").is_file():
        pytest.skip(f"Multi30k not found at {MULTI30K} (set ATTNMT_TEST_MULTI30K)")
    return MULTI30K


TINY_TRANSFORMER = {"preset": "transformer-tiny", "d_model": 64, "ffn": 128, "dropout": 0.0}
# The shared trained run's schedule: the learning rate decays linearly to zero over its 450
# updates, so it ends near 100% exact match on any CPU; at a constant rate its end point
# varied from 72% to 94% over seeds x kernel settings (benchmarks/test_margins.py).
TRAINED = {"schedule": "linear"}


def config(folder: Path, path: Path, model: dict, **train) -> Path:
    """A config file for the tiny reverse task."""
    import yaml

    cfg = {"data": {"dir": str(folder), "src": "src", "tgt": "tgt", "tokenizer": "word"},
           "model": model,
           "train": {"max_tokens": 600, "lr": 0.003, "warmup": 30, "schedule": "constant",
                     "label_smoothing": 0.0, "max_steps": 450, "valid_every": 150,
                     "log_every": 10, "best_metric": "exact", "threads": 1, **train},
           "decode": {"beam": 3}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def best_valid_step(run: Path, metric: str = "exact") -> int:
    """The update whose validation scored highest on ``metric`` in the run's own
    metrics.jsonl (the first of equal scores, as training keeps the first best)."""
    import json

    valid = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if r["type"] == "valid"]
    return max(valid, key=lambda r: (r[metric], -r["step"]))["step"]


@pytest.fixture(scope="session")
def task(tmp_path_factory) -> Path:
    """Reverse a sequence of 2..7 letters: small, fast, and needs every source position."""
    from attnmt.data.synthetic import write_task

    folder = tmp_path_factory.mktemp("reverse")
    write_task(folder, "reverse", n=3000, n_valid=50, n_test=60, min_items=2, max_items=7, seed=1)
    return folder


@pytest.fixture(scope="session")
def trained(task, tmp_path_factory) -> Path:
    """A tiny Transformer trained for 450 steps on the reverse task (about 12 s)."""
    from attnmt.config import load_config
    from attnmt.training.loop import train

    tmp = tmp_path_factory.mktemp("run")
    train(load_config(config(task, tmp / "c.yaml", TINY_TRANSFORMER, **TRAINED)), tmp / "run",
          quiet=True)
    return tmp / "run"


@pytest.fixture(scope="session")
def seq2seq_run(task, tmp_path_factory) -> Path:
    """A seq2seq model without attention, trained for a few steps."""
    from attnmt.config import load_config
    from attnmt.training.loop import train

    tmp = tmp_path_factory.mktemp("s2s")
    model = {"preset": "seq2seq-gru", "emb_size": 16, "enc_hidden": 16, "dec_hidden": 32}
    cfg = config(task, tmp / "c.yaml", model, max_steps=3, valid_every=3)
    train(load_config(cfg), tmp / "run", quiet=True)
    return tmp / "run"


@pytest.fixture(scope="session")
def kept_run(task, tmp_path_factory):
    """A tiny Transformer that kept its weights every 40 updates (and at update 0)."""
    from attnmt.config import load_config
    from attnmt.training.loop import train

    tmp = tmp_path_factory.mktemp("kept")
    cfg = config(task, tmp / "c.yaml", TINY_TRANSFORMER, max_steps=150, valid_every=50,
                 keep_every=40, keep_last=1)
    train(load_config(cfg), tmp / "run", quiet=True)
    return tmp / "run"


# ---- a real browser (Debian's Chromium, driven by Playwright) ----------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def page():
    """A headless Chromium page; without Chromium or Playwright the test is skipped and
    says why."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install -y chromium); browser test "
                    "skipped")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()
