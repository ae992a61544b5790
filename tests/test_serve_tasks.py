"""`attnmt serve` for a classifier (/classify) and a language model (/generate): answers,
micro-batching, limits and one-line JSON errors."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_descendants import cfg, write_pattern, write_toy

from attnmt.api import Classifier, LanguageModel
from attnmt.serve.app import _task_app
from attnmt.serve.limits import Limits
from attnmt.serve.task_app import ClassifyBatcher, create_task_app
from attnmt.training.loop import train

pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = write_toy(tmp_path_factory.mktemp("toy"))
    run = folder / "clf"
    train(cfg(folder, "classify", max_steps=120, best_metric="accuracy"), run, quiet=True)
    return run


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    folder = write_pattern(tmp_path_factory.mktemp("pattern"))
    run = folder / "lm"
    train(cfg(folder, "lm", max_steps=150), run, quiet=True)
    return run


def test_classify_answers_each_text_like_the_python_api(classifier):
    app = create_task_app(Classifier(classifier), classifier, "classify",
                          limits=Limits(max_texts=4, max_chars=40))
    texts = ["a b c a b", "g h i g h", "a b"]
    with TestClient(app) as client:
        r = client.post("/classify", json={"texts": texts})
        assert r.status_code == 200, r.text
        labels = r.json()["labels"]
        expected = Classifier(classifier).classify(texts)
        assert [x["label"] for x in labels] == [label for label, _ in expected]
        for item, (_, prob) in zip(labels, expected, strict=True):
            assert item["probability"] == pytest.approx(prob, abs=1e-6)
            assert sum(item["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert client.post("/classify", json={"text": "a b"}).json()["labels"][0]["label"]
        info = client.get("/info").json()
        assert info["task"] == "classify" and info["labels"] == ["left", "right"]
        att = client.post("/attention", json={"text": "a b g"}).json()
        assert att["src_tokens"] == ["<s>", "a", "b", "g", "</s>"]
        for body, status, field in [
                ({"text": "  "}, 422, "text"), ({"texts": ["a", ""]}, 422, "texts[1]"),
                ({"text": "a", "texts": ["b"]}, 422, "text"),
                ({"texts": ["a"] * 5}, 413, "texts"), ({"text": "a " * 30}, 413, "text"),
                ({"text": "a", "beam": 2}, 422, "beam")]:
            r = client.post("/classify", json=body)
            assert (r.status_code, r.json()["field"]) == (status, field), (body, r.text)
            assert "\n" not in r.json()["error"]
        assert client.post("/translate", json={"text": "a"}).status_code == 404


def test_concurrent_classify_requests_share_a_batch(classifier):
    clf = Classifier(classifier)
    batcher = ClassifyBatcher(clf, max_batch=8, max_wait_ms=200)

    async def run():
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.classify([t], work=1, deadline=1e12)
                                          for t in ["a b c", "g h i", "a a", "h h"]))
        finally:
            await batcher.stop()

    answers = asyncio.run(run())
    assert batcher.batches == 1
    assert [a[0]["label"] for a in answers] == [x for x, _ in clf.classify(
        ["a b c", "g h i", "a a", "h h"])]


def test_generate_continues_the_prompt_within_the_limits(language_model):
    lm = LanguageModel(language_model)
    app = _task_app(str(language_model), 32, 10.0, Limits(max_work=60), "cpu", "attnmt")
    with TestClient(app) as client:
        r = client.post("/generate", json={"prompt": "a b c a", "max_new_tokens": 6,
                                           "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["text"] == lm.generate("a b c a", 6, temperature=0)
        assert r.json()["new_tokens"] <= 6
        one = client.post("/generate", json={"prompt": "b", "seed": 3, "max_new_tokens": 8})
        two = client.post("/generate", json={"prompt": "b", "seed": 3, "max_new_tokens": 8})
        assert one.json()["text"] == two.json()["text"]
        assert client.post("/generate", json={}).status_code == 200    # from <s> alone
        for body, status, field in [
                ({"prompt": "a " * 70}, 413, "prompt"),
                ({"prompt": "a", "max_new_tokens": 60}, 413, "max_new_tokens"),
                ({"prompt": "a", "max_new_tokens": 0}, 422, "max_new_tokens"),
                ({"prompt": "a", "temperature": -1}, 422, "temperature"),
                ({"prompt": 3}, 422, "prompt")]:
            r = client.post("/generate", json=body)
            assert (r.status_code, r.json().get("field")) == (status, field), (body, r.text)
        assert client.get("/info").json()["task"] == "lm"
        assert client.post("/classify", json={"text": "a"}).status_code == 404


def test_classifier_explained_attention_beside_attributions(classifier):
    """'g' belongs to one alphabet only and 'd e' to both: what decides 'right' is 'g'."""
    import torch

    clf = Classifier(classifier)
    shown = clf.explain("d e g", ig_steps=32)
    assert shown["label"] == "right" and shown["tokens"] == ["<s>", "d", "e", "g", "</s>"]
    attention = shown["attention"]                          # (layers, heads, tokens)
    assert attention.shape == (2, 4, 5) and abs(attention.sum(-1) - 1).max() < 1e-4
    methods = shown["methods"]
    assert set(methods) == {"attention", "input_x_gradient", "integrated_gradients", "masking"}
    words = slice(1, 4)
    assert shown["tokens"][1 + int(abs(methods["masking"][words]).argmax())] == "g"
    assert shown["tokens"][1 + int(abs(methods["integrated_gradients"][words]).argmax())] == "g"
    # masking is exact: 'g' out of every attention, recomputed by hand
    data = clf._encode(["d e g"])
    b = data.batch(np.array([0]))
    keys = torch.tensor([[True, True, True, False, True]])
    right = clf.labels.index("right")
    with torch.no_grad():
        full = clf.model(b.src, b.src_lengths).log_softmax(-1)[0, right]
        masked = clf.model(b.src, b.src_lengths, keys=keys).log_softmax(-1)[0, right]
    assert methods["masking"][3] == pytest.approx(float(masked - full), abs=1e-5)
    # integrated gradients add up to log p(x) - log p(baseline), up to their delta
    assert shown["ig_delta"] < 0.05
    assert "attention~masking" in shown["agreement"]


def test_classifier_explain_over_rest_and_the_page(classifier):
    app = create_task_app(Classifier(classifier), classifier, "classify",
                          limits=Limits(max_chars=40))
    with TestClient(app) as client:
        r = client.post("/explain", json={"text": "d e g", "attribution": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["label"] == "right" and len(body["attention"]) == 2
        assert len(body["methods"]["masking"]) == len(body["tokens"])
        plain = client.post("/explain", json={"text": "a b"}).json()
        assert "methods" not in plain and plain["label"] == "left"
        for req, status in [({"text": " "}, 422), ({"text": "a " * 30}, 413),
                            ({"text": "a", "attribution": "yes"}, 422)]:
            r = client.post("/explain", json=req)
            assert r.status_code == status and "\n" not in r.json()["error"], r.text
        page = client.get("/")
        assert page.status_code == 200 and '"/explain"' in page.text


def test_explain_command_for_a_classifier(classifier, tmp_path):
    from test_train_cli import attnmt

    png, out = tmp_path / "c.png", tmp_path / "c.json"
    r = attnmt("explain", classifier, "d e g", "--attribution", "--png", png, "--json", out)
    assert "label: right" in r.stdout and "IG" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(json.loads(out.read_text())["methods"]) >= {"masking", "integrated_gradients"}
    r = attnmt("explain", classifier, "d e g", "--html", tmp_path / "c.html", check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
