"""CTranslate2 export and engine: the exported float32 model decodes exactly like attnmt
(greedy), in full batches, and serves the same API."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnmt.errors import UserError

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics

pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    from attnmt.export.ctranslate2 import export_ctranslate2

    return export_ctranslate2(trained, tmp_path_factory.mktemp("ct2") / "model")


def test_exported_model_matches_attnmt_greedy(trained, exported, task):
    from attnmt.export.ctranslate2 import export_ctranslate2
    from attnmt.inference.ct2engine import CT2Translator
    from attnmt.inference.translator import Translator

    out = exported
    assert (out / "model.bin").is_file() and (out / "vocab/joint.json").is_file()
    src = (task / "test.src").read_text().splitlines()[:40] + [""]
    ours = [h[0].text for h in Translator.from_run(trained).translate(src, beam=1)]
    theirs = [h[0].text for h in CT2Translator(out).translate(src, beam=1)]
    assert theirs == ours
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "translate", "--engine",
                        "ctranslate2", str(out), "--beam", "1"], input="a b c\n\nd e\n",
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split("\n")[:3] == [ours_for(trained, "a b c"), "",
                                                               ours_for(trained, "d e")]
    with pytest.raises(UserError, match="not empty"):
        export_ctranslate2(trained, out)


def ours_for(run, text):
    from attnmt.inference.translator import Translator

    return Translator.from_run(run).translate([text], beam=1)[0][0].text


def test_only_transformers_export(seq2seq_run, tmp_path):
    from attnmt.export.ctranslate2 import export_ctranslate2

    with pytest.raises(UserError, match="only Transformer models"):
        export_ctranslate2(seq2seq_run, tmp_path / "x")


def test_full_batches_keep_every_sentences_own_length_limit(task, tmp_path_factory):
    """An untrained model babbles until its limit: one CTranslate2 batch of sentences with
    different limits still stops each one where attnmt's search does."""
    from conftest import TINY_TRANSFORMER, config

    from attnmt.config import load_config
    from attnmt.export.ctranslate2 import export_ctranslate2
    from attnmt.inference.ct2engine import CT2Translator
    from attnmt.inference.translator import Translator
    from attnmt.training.loop import train

    tmp = tmp_path_factory.mktemp("babbler")
    train(load_config(config(task, tmp / "c.yaml", TINY_TRANSFORMER, max_steps=1,
                             valid_every=1)), tmp / "run", quiet=True)
    out = export_ctranslate2(tmp / "run", tmp / "ct2")
    src = [" ".join("abcdefghijklmnopqrst"[: n]) for n in range(1, 21)]
    ours = Translator.from_run(tmp / "run").translate(src, beam=1, max_len_ratio=0.5)
    theirs = CT2Translator(out).translate(src, beam=1, max_len_ratio=0.5, batch_size=64)
    lengths = [len(h[0].tokens) for h in ours]
    assert len(set(lengths)) > 3                       # the limits differ within the batch
    assert [h[0].tokens for h in theirs] == [h[0].tokens for h in ours]


def test_ctranslate2_engine_serves_the_same_api(exported):
    from fastapi.testclient import TestClient

    from attnmt.inference.ct2engine import CT2Translator
    from attnmt.serve.app import Limits, create_app

    app = create_app(CT2Translator(exported), exported, max_batch=8, max_wait_ms=5,
                     limits=Limits(max_chars=50, max_texts=4, max_beam=6, timeout_s=10))
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ok"}
        info = c.get("/info").json()
        assert info["engine"] == "ctranslate2" and info["parameters"] > 0
        r = c.post("/translate", json={"texts": ["a b c d", "", "k l m"], "beam": 3,
                                       "nbest": 2})
        items = r.json()["translations"]
        assert r.status_code == 200 and items[0]["text"] == "d c b a" and items[1]["text"] == ""
        assert [len(x["nbest"]) for x in items] == [2, 1, 2]     # as with attnmt
        assert c.post("/translate", json={"text": "a " * 40}).status_code == 413
        assert c.post("/translate", json={"text": "a", "beam": 7}).status_code == 422
        body = c.post("/attention", json={"text": "a b c"}).json()
        assert body["translation"] == "c b a" and body["layers"] is None and body["note"]
        assert body["src_tokens"] == ["a", "b", "c", "</s>"]
        assert body["tgt_tokens"] == ["c", "b", "a", "</s>"]
        assert len(body["weights"]) == 4
        assert all(len(row) == 4 and abs(sum(row) - 1) < 1e-4 for row in body["weights"])


def test_an_export_loaded_as_a_run_says_which_engine(exported):
    import attnmt

    with pytest.raises(UserError, match="use --engine ctranslate2"):
        attnmt.load(exported)


def test_an_export_without_its_config_is_a_clear_error(exported, tmp_path):
    import shutil

    from attnmt.inference.ct2engine import CT2Translator

    old = tmp_path / "old"
    shutil.copytree(exported, old)
    (old / "config.yaml").unlink()
    with pytest.raises(UserError, match="older attnmt"):
        CT2Translator(old)


@pytest.mark.parametrize("engine", ["attnmt", "ctranslate2"])
def test_serve_threads_reach_the_engine(engine, trained, exported, monkeypatch):
    """``attnmt serve --threads N`` sets PyTorch's threads, or CTranslate2's
    ``intra_threads``, before the app is built (the server itself is not started)."""
    import ctranslate2
    import torch
    import uvicorn

    from attnmt.cli import main

    served, built = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))

    def recording(*args, **kwargs):
        built.append(kwargs)
        return real(*args, **kwargs)

    real = ctranslate2.Translator
    monkeypatch.setattr(ctranslate2, "Translator", recording)
    before = torch.get_num_threads()
    run = exported if engine == "ctranslate2" else trained
    try:
        main(["serve", str(run), "--engine", engine, "--threads", "1"])
        assert served and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert [b["intra_threads"] for b in built] == ([1] if engine == "ctranslate2" else [])
