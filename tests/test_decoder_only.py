"""Translation by a decoder alone, end to end: trained by the same trainer from a config,
decoded by the same search, its attention back to the source read like the others'."""

from __future__ import annotations

import json

import pytest
from conftest import config
from test_train_cli import attnmt

DECODER_ONLY = {"preset": "decoder-only-small", "dec_layers": 4, "d_model": 64, "ffn": 128,
                "dropout": 0.0}


@pytest.fixture(scope="module")
def decoder_only_run(task, tmp_path_factory):
    """A tiny decoder-only translator trained on the reverse task (the shared schedule)."""
    from attnmt.config import load_config
    from attnmt.training.loop import train

    tmp = tmp_path_factory.mktemp("decoder-only")
    train(load_config(config(task, tmp / "c.yaml", DECODER_ONLY, schedule="linear")),
          tmp / "run", quiet=True)
    return tmp / "run"


@pytest.mark.numerics
def test_it_learns_the_reverse_task_with_greedy_and_beam(decoder_only_run):
    for beam in (1, 3):
        attnmt("evaluate", decoder_only_run, "--split", "test", "--beam", beam)
        name = f"test.beam{beam}.json"
        result = json.loads((decoder_only_run / "eval" / name).read_text())
        # one CPU, default kernels: 95 % exact greedy and beam 3 (chance is ~0)
        assert result["n"] == 60 and result["exact"] >= 80, result["exact"]


def test_target_attends_back_to_the_source(decoder_only_run, task):
    import attnmt as api

    model = api.load(decoder_only_run)
    src = (task / "test.src").read_text().splitlines()[0]
    shown = model.attention(src)
    weights = shown["weights"]                       # (T, S): target queries over the source
    assert len(weights) == len(shown["tgt_tokens"])
    assert len(weights[0]) == len(shown["src_tokens"])
    # a share of each query's attention, not a distribution over the source alone
    assert all(0 < sum(row) <= 1 + 1e-4 for row in weights)
    assert len(shown["layers"]) == 4                 # (layers, heads, T, S)


def test_exports_say_in_one_line_what_they_need(decoder_only_run, tmp_path):
    """CTranslate2's encoder-decoder spec cannot hold it; Hugging Face's Pegasus decoder can
    (tests/test_export_hf.py), given a joint SentencePiece vocabulary, which this run has
    not."""
    for kind, needs in (("ctranslate2", "decoder-only"), ("huggingface", "SentencePiece")):
        r = attnmt("export", kind, decoder_only_run, tmp_path / kind, check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert needs in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / kind).exists()


def test_the_step_explainer_points_to_the_attention_views(decoder_only_run):
    r = attnmt("explain", decoder_only_run, "a b c", check=False)
    assert r.returncode == 2 and "plot attention" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
