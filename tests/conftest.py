"""Shared fixtures: tiny synthetic data and the local Multi30k copy (never the network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MULTI30K = Path(os.environ.get("ATTNMT_TEST_MULTI30K", ROOT.parent / "shared/data/multi30k"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests must never reach the internet."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    torch.manual_seed(0)


@pytest.fixture
def multi30k_dir() -> Path:
    if not (MULTI30K / "train.de").is_file():
        pytest.skip(f"Multi30k not found at {MULTI30K} (set ATTNMT_TEST_MULTI30K)")
    return MULTI30K
