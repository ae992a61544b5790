"""The HTTP API: every endpoint, every limit, bad input, unicode, a model without attention."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from attnmt.serve.app import Limits, create_app
from attnmt.translator import Translator


@pytest.fixture(scope="module")
def client(trained):
    app = create_app(Translator.from_run(trained), trained, max_batch=8, max_wait_ms=5,
                     limits=Limits(max_chars=50, max_texts=4, max_beam=6, timeout_s=10))
    with TestClient(app) as c:
        yield c


def test_health_info_and_openapi(client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["arch"] == "transformer" and info["has_attention"] is True
    assert info["parameters"] > 0 and info["checkpoint_step"] == 450
    assert info["decoding"]["beam"] == 3
    assert "/translate" in client.get("/openapi.json").json()["paths"]
    assert "<textarea" in client.get("/").text


def test_translate_one_and_many_with_nbest(client):
    r = client.post("/translate", json={"text": "a b c d"})
    assert r.status_code == 200
    body = r.json()
    assert body["translations"][0]["text"] == "d c b a" and body["beam"] == 3
    r = client.post("/translate", json={"texts": ["a b", "", "k l m"], "beam": 4, "nbest": 3})
    items = r.json()["translations"]
    assert [len(x.get("nbest", [])) for x in items] == [3, 1, 3]
    assert items[1]["text"] == ""
    scores = [h["score"] for h in items[0]["nbest"]]
    assert scores == sorted(scores, reverse=True)


def test_limits_and_malformed_requests(client):
    r = client.post("/translate", json={"text": "a " * 40})
    assert r.status_code == 413 and r.json()["field"] == "text"
    r = client.post("/translate", json={"texts": ["a"] * 5})
    assert r.status_code == 413 and r.json()["field"] == "texts"
    r = client.post("/translate", json={"texts": ["a", "b " * 30]})
    assert r.status_code == 413 and r.json()["field"] == "texts[1]"
    r = client.post("/translate", json={"text": "a", "beam": 7})
    assert r.status_code == 422 and r.json()["field"] == "beam"
    r = client.post("/translate", json={"text": "a", "beam": 0})
    assert r.status_code == 422 and r.json()["field"] == "beam"
    r = client.post("/translate", json={"text": "a", "beam": 2, "nbest": 3})
    assert r.status_code == 422 and r.json()["field"] == "nbest"
    r = client.post("/translate", json={})
    assert r.status_code == 422 and "exactly one of text or texts" in r.json()["error"]
    r = client.post("/translate", content=b"{not json", headers={"content-type":
                                                                   "application/json"})
    assert r.status_code == 422 and "error" in r.json()
    r = client.post("/translate", json={"text": 5})
    assert r.status_code == 422 and r.json()["field"] == "text"
    assert client.get("/health").status_code == 200  # still serving


def test_unicode_text(client):
    for text in ["안녕하세요 세계", "Grüße aus Köln, schön", "a\u0301 ü"]:
        r = client.post("/translate", json={"text": text})
        assert r.status_code == 200 and isinstance(r.json()["translations"][0]["text"], str)


def test_attention_endpoint(client):
    r = client.post("/attention", json={"text": "a b c", "beam": 2})
    body = r.json()
    assert r.status_code == 200 and body["translation"] == "c b a"
    assert body["src_tokens"] == ["a", "b", "c", "</s>"]
    assert body["tgt_tokens"] == ["c", "b", "a", "</s>"]
    assert len(body["weights"]) == 4 and all(abs(sum(row) - 1) < 1e-4
                                             for row in body["weights"])
    layers = body["layers"]
    assert len(layers) == 2 and len(layers[0]) == 4  # 2 layers x 4 heads
    r = client.post("/attention", json={"text": "  "})
    assert r.status_code == 422 and r.json()["field"] == "text"


def test_model_without_attention_says_so(seq2seq_run):
    app = create_app(Translator.from_run(seq2seq_run), seq2seq_run)
    with TestClient(app) as c:
        r = c.post("/attention", json={"text": "a b"})
        assert r.status_code == 422 and "no attention" in r.json()["error"]
        assert c.post("/translate", json={"text": "a b"}).status_code == 200


def test_concurrent_requests_are_micro_batched(trained):
    translator = Translator.from_run(trained)
    app = create_app(translator, trained, max_batch=16, max_wait_ms=200)
    calls = []
    original = translator.translate

    def counting(texts, **kw):
        calls.append(len(texts))
        return original(texts, **kw)

    translator.translate = counting
    import httpx

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                texts = ["a b", "c d e", "f g", "h i j k", "l m", "n o p"]
                rs = await asyncio.gather(*(c.post("/translate", json={"text": t, "beam": 1})
                                            for t in texts))
                return [r.json()["translations"][0]["text"] for r in rs], texts

    outs, texts = asyncio.run(main())
    assert sum(calls) == 6 and len(calls) < 6       # fewer model calls than requests
    good = sum(o.split() == t.split()[::-1] for o, t in zip(outs, texts))
    assert good >= 5                                 # each answer went to its own request


def test_slow_translation_gets_503(trained):
    import time

    translator = Translator.from_run(trained)
    original = translator.translate
    translator.translate = lambda texts, **kw: (time.sleep(1.0), original(texts, **kw))[1]
    app = create_app(translator, trained, limits=Limits(timeout_s=0.2))
    with TestClient(app) as c:
        r = c.post("/translate", json={"text": "a b"})
        assert r.status_code == 503 and "longer than" in r.json()["error"]
