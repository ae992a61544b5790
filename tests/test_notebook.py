"""The notebook runs, headless, on a reduced budget: it never rots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs/notebooks/attention_in_5_steps.ipynb"


def test_attention_in_5_steps_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("ATTNMT_NOTEBOOK_MINUTES", "0.1")
    monkeypatch.setenv("ATTNMT_NOTEBOOK_OUT", str(tmp_path / "demo"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "weights sum to" in text
    line = next(x for x in text.splitlines() if "distinct context vectors across" in x)
    assert line.endswith(": 1")          # the fixed-context model: one vector for every step
    assert not [o for o in outputs if o.output_type == "error"]
    assert os.path.isdir(tmp_path / "demo" / "runs" / "rnn-dot")
