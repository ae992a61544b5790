"""A real browser on the web page: type, translate, see the heatmap, hover.

Needs Debian's Chromium at /usr/bin/chromium (`make test` installs it when it
can); without it this test is skipped and says why.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(app):
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def server(trained):
    from attnmt.inference.translator import Translator
    from attnmt.serve.app import create_app

    with _serving(create_app(Translator.from_run(trained), trained)) as url:
        yield url


@pytest.fixture
def study_server(kept_run, seq2seq_run):
    """A study of two runs: the first kept checkpoints (the timeline), the second has no
    attention."""
    from attnmt.inference.translator import Translator
    from attnmt.serve.app import create_app

    study = {"kept": Translator.from_run(kept_run), "fixed": Translator.from_run(seq2seq_run)}
    with _serving(create_app(study["kept"], kept_run, study=study)) as url:
        yield url


def test_page_translates_and_heatmap_highlights_on_hover(page, server, tmp_path):
    page.goto(server)
    page.wait_for_function("document.getElementById('model-info').textContent"
                           ".includes('parameters')")
    page.fill("#source", "a b c d")
    page.select_option("#beam", "2")
    page.click("#translate")
    page.wait_for_selector("#heatmap td.cell")
    assert page.text_content("#translation") == "d c b a"
    cells = page.locator("#heatmap td.cell")
    assert cells.count() == 5 * 5              # (4 tokens + </s>) x (4 tokens + </s>)
    page.hover(".tgt-token >> nth=0")           # the first output token, "d"
    highlighted = page.locator(".src-token.hl").all_text_contents()
    assert highlighted and "d" in highlighted
    assert page.locator('#heatmap td.hl[data-t="0"]').count() == 5
    page.hover(".src-token >> nth=0")           # source "a" -> output "a" (4th)
    assert "a" in page.locator(".tgt-token.hl").all_text_contents()
    assert page.locator("#view option").count() == 1 + 2 * (1 + 4)   # layers and heads
    page.select_option("#view", "1:0")
    page.wait_for_selector("#heatmap td.cell")
    page.screenshot(path=str(tmp_path / "page.png"))


def _press(page, url: str, button: str, text: str, shows: str) -> None:
    """Open the page, wait until ``button`` is offered, type ``text``, press it and wait
    for ``shows``."""
    page.goto(url)
    page.wait_for_selector(f"{button}:not([hidden])")
    page.fill("#source", text)
    page.click(button)
    page.wait_for_selector(shows)


def _shown_weights(page) -> list[str]:
    """The weights the Explain view shows in step 3 (one bar per source token)."""
    return page.locator('section[data-step="3"] .bar-value').all_text_contents()


def test_explain_view_steps_masks_and_silences_with_the_api_numbers(page, server):
    import httpx

    def api(**body) -> dict:
        return httpx.post(f"{server}/explain", json={"text": "a b c d", **body}).json()

    def expected(data: dict, t: int) -> list[str]:          # layer 1, head 1 (the default)
        return [f"{w:.3f}" for w in data["steps"][t]["layers"][0]["cross"]["weights"][0]]

    _press(page, server, "#explain", "a b c d", shows=".step-box")
    assert page.text_content("#ex-position-label") == 'output word 1 of 5: "d"'
    plain = api()
    assert _shown_weights(page) == expected(plain, 0)
    page.click("#ex-next")
    assert page.text_content("#ex-position-label") == 'output word 2 of 5: "c"'
    assert _shown_weights(page) == expected(plain, 1)
    page.click(".ex-src >> nth=3")                       # mask source "d"
    page.wait_for_selector(".ex-src.masked")
    assert "masked \"d\"" in page.text_content("#explain-status")
    masked = api(masked=[3])
    assert _shown_weights(page) == expected(masked, 1) and expected(masked, 1)[3] == "0.000"
    page.click('button.zero-head[data-layer="0"][data-head="0"]')
    page.wait_for_function("document.getElementById('explain-status').textContent"
                           ".includes('silenced layer 1 head 1')")
    both = api(masked=[3], zero_heads=[[0, 0]])
    assert page.locator(".ex-tgt").all_text_contents() == both["tgt_tokens"]
    page.select_option("#ex-kind", "encoder")
    page.wait_for_selector("#ex-position")
    assert page.locator('section[data-step="5"]').count() == 0   # no next word there


def test_explain_view_shows_attention_beside_the_attributions(page, server):
    import httpx

    _press(page, server, "#explain", "a b c d", shows=".step-box")
    page.click("#ex-attribute")
    page.wait_for_selector('#ex-attribution .method[data-method="masking"]')
    data = httpx.post(f"{server}/explain", json={"text": "a b c d", "attribution": True},
                      timeout=60).json()["attribution"]
    rows = page.locator("#ex-attribution .method b").all_text_contents()
    assert len(rows) == 4 and rows[0] == "attention"
    shown = page.locator('#ex-attribution .method[data-method="integrated_gradients"] '
                         '.bar-value').all_text_contents()
    assert shown == [f"{x:.3f}" for x in data["methods"]["integrated_gradients"][0]]
    assert "Spearman" in page.text_content("#ex-attribution ul")
    page.click("#ex-next")                                  # the rows follow the word
    shown = page.locator('#ex-attribution .method[data-method="masking"] '
                         '.bar-value').all_text_contents()
    assert shown == [f"{x:.3f}" for x in data["methods"]["masking"][1]]


def test_timeline_slider_and_study_side_by_side(page, study_server):
    import httpx

    frames = httpx.post(f"{study_server}/timeline", json={"text": "a b c"}).json()["frames"]
    _press(page, study_server, "#timeline", "a b c", shows="#tl-slider")
    assert page.text_content("#tl-step") == "update 150 (4 of 4)"
    assert page.text_content("#tl-translation") == frames[-1]["translation"]
    page.locator("#tl-slider").fill("0")
    assert page.text_content("#tl-step") == "update 0 (1 of 4)"
    assert page.text_content("#tl-translation") == (frames[0]["translation"] or
                                                      "(empty translation)")
    assert page.locator("table.heatmap td.cell").count() == \
        len(frames[0]["tgt_tokens"]) * 4
    page.click("#study")
    page.wait_for_selector(".study-card")
    assert page.locator(".study-card").count() == 2
    assert page.locator('.study-card[data-run="fixed"] table.heatmap').count() == 0
    page.click('.study-card[data-run="fixed"] .study-open')
    page.wait_for_selector("#study-detail .step-box")
    assert "bottleneck" in page.text_content("#study-detail")


def test_explain_html_file_works_with_the_network_cut(page, trained, tmp_path):
    """`attnmt explain --html` writes a page that needs nothing but itself."""
    from attnmt.cli import main

    page_file = tmp_path / "explain.html"
    main(["explain", str(trained), "a b c", "--html", str(page_file)])
    requests, errors = [], []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file:") else (requests.append(route.request.url), route.abort()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri())
    page.wait_for_selector(".step-box")
    page.click("#ex-next")
    assert page.text_content("#ex-position-label") == 'output word 2 of 4: "b"'
    assert requests == [] and errors == []


@pytest.fixture
def classifier_server(tmp_path):
    """A toy sentiment-like classifier: 'g h i' only in one class, 'a b c' only in the
    other, 'd e f' in both."""
    from test_descendants import cfg, write_toy

    from attnmt.api import Classifier
    from attnmt.serve.task_app import create_task_app
    from attnmt.training.loop import train

    folder = write_toy(tmp_path)
    train(cfg(folder, "classify", max_steps=120, best_metric="accuracy"), tmp_path / "clf",
          quiet=True)
    with _serving(create_task_app(Classifier(tmp_path / "clf"), tmp_path / "clf")) as url:
        yield url


def test_classify_page_shows_the_label_attention_and_attributions(page, classifier_server,
                                                                  tmp_path):
    page.goto(classifier_server)
    page.wait_for_function("document.getElementById('model-info').textContent"
                           ".includes('labels')")
    page.fill("#text", "d e g")
    page.click("#classify")
    page.wait_for_selector("#tokens td")
    assert page.text_content(".bar.chosen .name") == "right"
    rows = page.locator("#tokens tbody tr").all_text_contents()
    assert any(r.startswith("attention") for r in rows)
    assert any(r.startswith("integrated gradients") for r in rows)
    header = page.locator("#tokens thead td").all_text_contents()
    assert header == ["<s>", "d", "e", "g", "</s>"]
    assert len(rows) == 4                               # attention and three attributions
    mean = page.locator("#tokens tbody tr >> nth=0").text_content()
    page.select_option("#view", "0:1")                  # layer 1, head 2
    assert page.locator("#tokens tbody tr >> nth=0").text_content() != mean
    page.screenshot(path=str(tmp_path / "classify.png"))
