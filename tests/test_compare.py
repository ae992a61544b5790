"""A tiny study: two runs, a few steps each; every report file; resuming trains nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from attnmt.errors import ConfigError
from attnmt.studies.compare import compare, load_study


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


@pytest.mark.numerics
def test_tiny_study_writes_every_report_file_and_resumes_without_training(task, tmp_path):
    path = study_file(tmp_path, task)
    out = tmp_path / "report"
    report = compare(path, out, log=lambda *_: None)
    for name in ("report.md", "report.html", "results.json", "score_by_length.png",
                 "learning_curves.png", "attention_1.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    runs = report["runs"]
    assert set(runs) == {"s2s", "dot"} and runs["s2s"]["step"] == 20
    assert runs["s2s"]["stopped_by"] == "max_steps" and "20 (max_steps)" in \
        (out / "report.md").read_text()
    assert runs["dot"]["has_attention"] and not runs["s2s"]["has_attention"]
    # the synthetic data's gold alignment scores the attention model only
    assert 0 <= runs["dot"]["alignment"]["aer"] <= 100 and "alignment" not in runs["s2s"]
    assert sum(b["n"] for b in runs["dot"]["by_length"]) == 60
    for bucket in runs["dot"]["by_length"]:          # sparse buckets merged, intervals given
        low, high = bucket["ci95"]
        assert bucket["n"] >= 30 and low <= bucket["exact"] <= high
    md = (out / "report.md").read_text()
    assert "| s2s |" in md and "nrefs:1" in md and "![score by length]" in md
    assert "attention AER²" in md
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
    for bad_eval, message in (({"metric": "ter"}, "eval metric 'ter' is unknown"),
                              ({"min_bucket": 0}, "min_bucket must be")):
        with pytest.raises(ConfigError, match=message):
            load_study(study_file(tmp_path, task, eval=bad_eval))
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


def test_overrides_apply_to_every_run_after_its_own_settings(tmp_path, task):
    from attnmt.studies.compare import run_config

    study = load_study(study_file(tmp_path, task, runs=[
        {"name": "a", "preset": "rnn-dot", "set": {"train.lr": 0.1}}]))
    assert run_config(study, study["runs"][0], None).train.lr == 0.1
    cfg = run_config(study, study["runs"][0], None, ["train.lr=0.5", "train.patience=2"])
    assert cfg.train.lr == 0.5 and cfg.train.patience == 2


def test_merge_sparse_buckets_leaves_no_small_bucket():
    from hypothesis import given
    from hypothesis import strategies as st

    from attnmt.inference.metrics import bucket_name, merge_sparse_buckets

    @given(st.lists(st.integers(1, 60), min_size=1, max_size=200),
           st.lists(st.integers(1, 60), max_size=6, unique=True), st.integers(1, 40))
    def check(lengths, edges, min_count):
        kept = merge_sparse_buckets(lengths, edges, min_count)
        assert set(kept) <= set(edges)
        counts: dict[str, int] = {}
        for n in lengths:
            counts[bucket_name(n, kept)] = counts.get(bucket_name(n, kept), 0) + 1
        assert kept == [] or min(counts.get(bucket_name(e, kept), 0) for e in kept) >= min_count
        assert len(counts) == 1 or min(counts.values()) >= min_count

    check()
    assert merge_sparse_buckets([3] * 50 + [12] * 40 + [22] * 10 + [30] * 2, [10, 20, 25], 30) \
        == [10]


def test_bootstrap_interval_brackets_the_score_and_is_repeatable():
    from attnmt.inference.metrics import bootstrap_interval, corpus_scores

    refs = [f"sentence number {i} is here" for i in range(80)]
    hyps = [r if i % 4 else r.replace("here", "there") for i, r in enumerate(refs)]
    scores = corpus_scores(hyps, refs)
    for metric in ("exact", "bleu", "chrf"):
        low, high = bootstrap_interval(hyps, refs, metric)
        assert low < scores[metric] < high and high - low < 40
        assert bootstrap_interval(hyps, refs, metric) == (low, high)
    assert bootstrap_interval(refs, refs, "exact") == (100.0, 100.0)
