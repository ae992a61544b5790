"""A tiny study: two runs, a few steps each; every report file; resuming trains nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from attnmt.compare import compare, load_study
from attnmt.errors import ConfigError


def study_file(tmp_path, task, **extra):
    study = {
        "name": "tiny",
        "config": {"data": {"dir": str(task), "src": "src", "tgt": "tgt", "tokenizer": "word"},
                   "model": {"emb_size": 16, "enc_hidden": 16, "dec_hidden": 32, "d_model": 32,
                             "ffn": 64, "dropout": 0.0},
                   "train": {"max_tokens": 600, "lr": 0.003, "warmup": 10, "valid_every": 10,
                             "best_metric": "exact", "threads": 1}},
        "budget": {"steps": 20},
        "eval": {"beam": 2, "metric": "exact", "length": "words", "edges": [3, 5],
                 "heatmaps": 1},
        "runs": [{"name": "s2s", "preset": "seq2seq-gru"},
                 {"name": "dot", "preset": "rnn-dot", "set": {"model.input_feeding": False}}],
        **extra}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_tiny_study_writes_every_report_file_and_resumes_without_training(task, tmp_path):
    path = study_file(tmp_path, task)
    out = tmp_path / "report"
    report = compare(path, out, log=lambda *_: None)
    for name in ("report.md", "report.html", "results.json", "score_by_length.png",
                 "learning_curves.png", "attention_1.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    runs = report["runs"]
    assert set(runs) == {"s2s", "dot"} and runs["s2s"]["step"] == 20
    assert runs["dot"]["has_attention"] and not runs["s2s"]["has_attention"]
    assert sum(b["n"] for b in runs["dot"]["by_length"]) == 60
    md = (out / "report.md").read_text()
    assert "| s2s |" in md and "nrefs:1" in md and "![score by length]" in md
    assert "data:image/png;base64," in (out / "report.html").read_text()
    # both runs share one vocabulary
    assert (out / "runs/s2s/vocab/joint.json").read_text() == \
        (out / "runs/dot/vocab/joint.json").read_text()
    stamp = (out / "runs/dot/checkpoints/latest.json").stat().st_mtime_ns
    again = compare(path, out, log=lambda *_: None)
    assert (out / "runs/dot/checkpoints/latest.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "results.json").read_text())["runs"]["dot"]["step"] == 20
    assert again["runs"]["dot"]["bleu"] == runs["dot"]["bleu"]


def test_bad_study_files(tmp_path, task):
    bad = study_file(tmp_path, task, runs=[{"name": "x", "preset": "rnn-dott"}])
    with pytest.raises(ConfigError, match="unknown preset 'rnn-dott'"):
        load_study(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_study(tmp_path / "missing.yaml")
    missing_data = study_file(tmp_path, task)
    s = yaml.safe_load(missing_data.read_text())
    s["config"]["data"]["dir"] = str(tmp_path / "nowhere")
    missing_data.write_text(yaml.safe_dump(s))
    from attnmt.errors import DataError

    with pytest.raises(DataError, match="nowhere"):
        compare(missing_data, tmp_path / "r", log=lambda *_: None)


def test_shipped_studies_load():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "studies").glob("*.yaml")):
        study = load_study(path)
        assert study["runs"]
