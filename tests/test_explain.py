"""The explainer shows the model's own numbers: they recompose into what the model
computes, greedy search writes the words it says were chosen, and interventions
decode exactly as search does under the same intervention."""

from __future__ import annotations

import json

import numpy as np
import pytest

import attnmt
from attnmt.errors import UserError
from attnmt.explain.numbers import ExplainError, to_json

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x[np.isfinite(x)].max())
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def additive_run(task, tmp_path_factory):
    from conftest import config

    from attnmt.config import load_config
    from attnmt.training.loop import train

    tmp = tmp_path_factory.mktemp("additive")
    model = {"preset": "rnn-additive", "emb_size": 16, "enc_hidden": 16, "dec_hidden": 32}
    train(load_config(config(task, tmp / "c.yaml", model, max_steps=120, valid_every=120)),
          tmp / "run", quiet=True)
    return tmp / "run"


def _greedy(model, text: str) -> list[str]:
    best = model.translator.translate([text], beam=1)[0][0]
    return [model.translator.vocabs.tgt.piece(t) for t in best.tokens] + ["</s>"]


def test_rnn_numbers_recompose_into_the_model_step(additive_run):
    m = attnmt.load(additive_run)
    shown = m.explain("a b c d", top_k=3)
    assert shown["family"] == "attention" and shown["scorer"] == "additive"
    assert [s["chosen"] for s in shown["steps"]] == shown["tgt_tokens"] == _greedy(m, "a b c d")
    states, keys = shown["states"], shown["keys"]
    assert states.shape[0] == keys.shape[0] == len(shown["src_tokens"])
    for step in shown["steps"]:
        # step 2: v_a · tanh(W_q q + W_k h̄ₛ) is the score; step 3: softmax; step 4: Σ a h̄
        assert np.allclose(step["hidden"] @ step["v_a"], step["scores"], atol=1e-5)
        assert np.allclose(np.tanh(step["projected_query"] + keys), step["hidden"], atol=1e-5)
        assert np.allclose(_softmax(step["scores"]), step["weights"], atol=1e-6)
        assert step["weights"].sum() == pytest.approx(1.0, abs=1e-6)
        assert np.allclose(step["weights"] @ states, step["context"], atol=1e-5)
        assert step["top"][0][0] == step["chosen"] and len(step["top"]) == 3


def _mask_in_encoder_output(model, position: int):
    """Search under the same intervention, through the ordinary ``decode_step`` path."""
    encode = model.encode

    def masked(src, lengths):
        enc = encode(src, lengths)
        enc.mask = enc.mask.clone()
        enc.mask[:, position] = False
        return enc
    model.encode = masked


@pytest.mark.parametrize("which", ["rnn", "transformer"])
def test_a_masked_token_gets_weight_zero_and_decoding_matches_search(which, additive_run,
                                                                      trained):
    m = attnmt.load(additive_run if which == "rnn" else trained)
    text = "a b c d e"
    shown = m.explain(text, masked=[1])
    assert shown["masked"] == [1]
    for step in shown["steps"]:
        if which == "rnn":
            assert step["weights"][1] == 0 and step["scores"][1] == -np.inf
            assert step["weights"].sum() == pytest.approx(1.0, abs=1e-6)
        else:
            for layer in step["layers"]:
                assert not layer["cross"]["allowed"][1]
                assert np.all(layer["cross"]["weights"][:, 1] == 0)
    _mask_in_encoder_output(m.translator.model, 1)
    assert shown["tgt_tokens"] == _greedy(m, text)


def test_transformer_numbers_per_layer_and_head(trained):
    m = attnmt.load(trained)
    shown = m.explain("a b c d")
    assert shown["family"] == "transformer" and shown["translation"] == "d c b a"
    assert [s["chosen"] for s in shown["steps"]] == _greedy(m, "a b c d")
    for t, step in enumerate(shown["steps"]):
        for layer, kv in zip(step["layers"], shown["layers_kv"]):
            cross, self_ = layer["cross"], layer["self"]
            d_k = cross["query"].shape[-1]
            scores = np.einsum("hd,hsd->hs", cross["query"], kv["cross"]["keys"]) / np.sqrt(d_k)
            assert np.allclose(scores, cross["scores"], atol=1e-4)
            assert np.allclose(_softmax(cross["scores"]), cross["weights"], atol=1e-5)
            assert np.allclose(np.einsum("hs,hsd->hd", cross["weights"], kv["cross"]["values"]),
                               cross["heads"], atol=1e-5)
            assert self_["weights"].shape[-1] == t + 1     # causal: the words so far
            visible = kv["self"]["values"][:, : t + 1]
            assert np.allclose(np.einsum("hs,hsd->hd", self_["weights"], visible),
                               self_["heads"], atol=1e-5)
    for layer in shown["encoder_layers"]:
        assert np.allclose(layer["weights"].sum(-1), 1.0, atol=1e-5)


def test_a_silenced_head_is_zero_and_decoding_matches_search(trained):
    m = attnmt.load(trained)
    text = "a b c d e f"
    shown = m.explain(text, zero_heads=[(0, 1), (1, 0)])
    assert shown["zeroed_heads"] == [[0, 1], [1, 0]]
    for step in shown["steps"]:
        assert np.all(step["layers"][0]["cross"]["heads"][1] == 0)
        assert np.all(step["layers"][1]["cross"]["heads"][0] == 0)
        assert np.any(step["layers"][0]["cross"]["heads"][0] != 0)
    model = m.translator.model
    init_state = model.init_state
    model.init_state = lambda enc: model.zero_heads(init_state(enc), [(0, 1), (1, 0)])
    assert shown["tgt_tokens"] == _greedy(m, text)


def test_silencing_heads_over_a_corpus_is_the_explainers_intervention(trained, task):
    """translate(zero_heads=...) decodes every sentence as the explainer's intervention does,
    in batches that shrink as sentences finish (the gates are per head, not per row)."""
    m = attnmt.load(trained)
    src = (task / "test.src").read_text().splitlines()[:12]
    heads = [(0, 1), (1, 0)]
    greedy = [h[0].text for h in m.translator.translate(src, beam=1, zero_heads=heads)]
    assert greedy[:3] == [m.explain(t, zero_heads=heads)["translation"] for t in src[:3]]
    batched = [h[0].text for h in m.translator.translate(src, beam=3, zero_heads=heads)]
    alone = [m.translator.translate([t], beam=3, zero_heads=heads)[0][0].text for t in src]
    assert batched == alone
    assert [h[0].text for h in m.translator.translate(src, beam=3, zero_heads=[])] == \
        [h[0].text for h in m.translator.translate(src, beam=3)]


def test_the_fixed_context_model_shows_one_vector_and_refuses_attention_interventions(
        seq2seq_run):
    m = attnmt.load(seq2seq_run)
    shown = m.explain("a b c")
    assert shown["family"] == "fixed-context" and shown["scorer"] is None
    first = shown["steps"][0]["context"]
    assert all(np.array_equal(s["context"], first) for s in shown["steps"])
    with pytest.raises(ExplainError, match="no attention to mask") as e:
        m.explain("a b c", masked=[0])
    assert e.value.field == "masked"
    with pytest.raises(ExplainError, match="not heads"):
        m.explain("a b c", zero_heads=[(0, 0)])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"text": "  "}, "text is empty"),
    ({"masked": [9]}, "outside the source"),
    ({"masked": [0, 1, 2, 3]}, "every source position is masked"),
    ({"zero_heads": [(7, 0)]}, "does not exist"),
])
def test_bad_input_is_a_one_line_error(trained, kwargs, message):
    m = attnmt.load(trained)
    with pytest.raises(UserError, match=message):
        m.explain(**{"text": "a b c", **kwargs})


def test_to_json_rounds_and_writes_masked_scores_as_null():
    data = {"a": np.array([[1.23456789, -np.inf]]), "b": np.array([True, False]),
            "c": [np.array([123456.7, 0.000123456, 0.0])], "d": float("-inf")}
    out = to_json(data, digits=4)
    assert out == {"a": [[1.235, None]], "b": [True, False], "c": [[123500.0, 0.0001235, 0.0]],
                   "d": None}
    json.dumps(out, allow_nan=False)


def test_cli_explain_prints_steps_and_writes_an_offline_page(trained, tmp_path, capsys):
    from attnmt.cli import main

    page, figure = tmp_path / "e.html", tmp_path / "e.png"
    main(["explain", str(trained), "a b c", "--step", "1", "--html", str(page), "--png",
          str(figure), "--layer", "0"])
    out = capsys.readouterr().out
    assert "translation: c b a" in out and "step 1 of 0..3: writing 'b'" in out
    assert "layer 0 head 0" in out and "layer 1" not in out
    html = page.read_text()
    assert "AttnExplain.render" in html and '"translation":"c b a"' in html
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert figure.stat().st_size > 1000
    for argv, message in [(["--step", "9"], "--step 9 is out of range"),
                          (["--head", "9"], "--head 9 is out of range"),
                          (["--mask", "x"], "give source positions as numbers")]:
        with pytest.raises(SystemExit) as e:
            main(["explain", str(trained), "a b c", *argv])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_api_explain_and_its_422s(trained, seq2seq_run):
    from fastapi.testclient import TestClient

    from attnmt.inference.translator import Translator
    from attnmt.serve.app import create_app

    with TestClient(create_app(Translator.from_run(trained), trained)) as client:
        assert client.get("/info").json()["explain"] is True
        r = client.post("/explain", json={"text": "a b c", "masked": [0], "zero_heads": [[0, 1]]})
        assert r.status_code == 200
        data = r.json()
        assert data["masked"] == [0] and data["zeroed_heads"] == [[0, 1]]
        assert data["steps"][0]["layers"][0]["cross"]["weights"][0][0] == 0
        r = client.post("/explain", json={"text": "a b c", "masked": [0], "attribution": True})
        a = r.json()["attribution"]                 # of the translation the masked model wrote
        assert r.status_code == 200 and a["tgt_tokens"] == r.json()["tgt_tokens"]
        assert {len(rows) for rows in a["methods"].values()} == {len(r.json()["steps"])}
        assert client.get("/static/explain.js").status_code == 200
        for body, field in [({"text": " "}, "text"), ({"text": "a", "masked": [5]}, "masked"),
                            ({"text": "a", "zero_heads": [[0, 9]]}, "zero_heads"),
                            ({"text": "a", "zero_heads": [[0]]}, "zero_heads.0")]:
            r = client.post("/explain", json=body)
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.json())
    with TestClient(create_app(Translator.from_run(seq2seq_run), seq2seq_run)) as client:
        r = client.post("/explain", json={"text": "a b", "zero_heads": [[0, 0]]})
        assert r.status_code == 422 and "not heads" in r.json()["error"]


def test_keep_every_keeps_a_checkpoint_per_multiple_that_loads(kept_run):
    from attnmt.rundir import RunDir

    run = RunDir(kept_run)
    assert run.kept_steps() == [0, 50, 100, 150]      # first save at or past 0, 40, 80, 120
    assert run.steps() == [150]                       # keep_last still prunes the others
    first = attnmt.load(kept_run, checkpoint="0").translate("a b c", beam=1)
    assert first != attnmt.load(kept_run, checkpoint="150").translate("a b c", beam=1)


def test_timeline_shows_the_attention_under_every_kept_checkpoint(kept_run, trained):
    from attnmt.explain.numbers import timeline

    shown = timeline(kept_run, "a b c")
    assert [f["step"] for f in shown["frames"]] == [0, 50, 100, 150]
    last = attnmt.load(kept_run, checkpoint="150")
    assert shown["frames"][-1]["translation"] == last.translate("a b c", beam=1)
    for frame in shown["frames"]:
        assert frame["weights"].shape == (len(frame["tgt_tokens"]), len(shown["src_tokens"]))
        assert np.allclose(frame["weights"].sum(1), 1.0, atol=1e-5)
    assert shown["frames"][0]["valid"] == {} and "loss" in shown["frames"][1]["valid"]
    with pytest.raises(ExplainError, match="keep_every") as e:
        timeline(trained, "a b c")
    assert e.value.field == "run"


def _study_folder(tmp_path, runs: dict):
    for name, path in runs.items():
        (tmp_path / "runs").mkdir(parents=True, exist_ok=True)
        (tmp_path / "runs" / name).symlink_to(path)
    return tmp_path


def test_cli_timeline_and_study_pages(kept_run, trained, seq2seq_run, tmp_path, capsys):
    from attnmt.cli import main

    main(["explain", str(kept_run), "a b c", "--timeline", "--html", str(tmp_path / "t.html"),
          "--png", str(tmp_path / "t.png")])
    out = capsys.readouterr().out
    assert "update       0:" in out and "update     150:" in out
    assert "AttnExplain.timeline" in (tmp_path / "t.html").read_text()
    study = _study_folder(tmp_path / "study", {"attention": trained, "fixed": seq2seq_run})
    main(["explain", str(study), "a b c", "--html", str(tmp_path / "s.html")])
    out = capsys.readouterr().out
    assert "attention: c b a" in out and "fixed:" in out
    page = (tmp_path / "s.html").read_text()
    assert "AttnExplain.study" in page and "https://" not in page
    for where, flags in [([str(study), "a b c"], ["--mask", "0"]),
                         ([str(kept_run), "a b c", "--timeline"], ["--step", "1"])]:
        with pytest.raises(SystemExit) as e:           # options that would be ignored
            main(["explain", *where, *flags])
        assert e.value.code == 2 and f"{flags[0]} apply to one run" in capsys.readouterr().err


def test_api_timeline_and_study(kept_run, trained, seq2seq_run, tmp_path):
    from fastapi.testclient import TestClient

    from attnmt.inference.translator import Translator
    from attnmt.serve.app import create_app

    with TestClient(create_app(Translator.from_run(kept_run), kept_run)) as client:
        assert client.get("/info").json()["kept_steps"] == [0, 50, 100, 150]
        frames = client.post("/timeline", json={"text": "a b"}).json()["frames"]
        assert [f["step"] for f in frames] == [0, 50, 100, 150]
        r = client.post("/study", json={"text": "a b"})
        assert r.status_code == 404 and r.json()["field"] == "run"
    study = {"attention": Translator.from_run(trained), "fixed": Translator.from_run(seq2seq_run)}
    with TestClient(create_app(study["attention"], trained, study=study)) as client:
        assert client.get("/info").json()["study"] == ["attention", "fixed"]
        runs = client.post("/study", json={"text": "a b c"}).json()["runs"]
        assert runs["attention"]["translation"] == "c b a"
        assert runs["fixed"]["alignment"] is None and len(runs["attention"]["alignment"]) == 4
        r = client.post("/timeline", json={"text": "a b"})
        assert r.status_code == 404 and "keep_every" in r.json()["error"]

