"""The Python API: ``attnmt.load`` gives the objects the CLI and the server use."""

from __future__ import annotations

import math

import pytest

import attnmt
from attnmt.errors import UserError


def test_load_translate_attention_and_score(trained):
    m = attnmt.load(trained)
    assert m.translate("a b c d", beam=1) == "d c b a"
    assert m.translate(["a b c d", "", "a b c"], beam=3) == ["d c b a", "", "c b a"]
    shown = m.attention("a b c")
    assert shown["translation"] == "c b a" and len(shown["weights"]) == 4
    # the score of a pair is the log-probability search found for it
    best = m.translator.translate(["a b c d", "e f"], beam=1)
    scores = m.score(["a b c d", "e f"], [h[0].text for h in best])
    assert scores == pytest.approx([h[0].score for h in best], abs=1e-4)
    worse = m.score(["a b c d"], ["a b c d"])[0]
    assert worse < scores[0] and math.isfinite(worse)
    with pytest.raises(UserError, match="one target per source"):
        m.score(["a"], [])


def test_load_knows_every_task(trained, seq2seq_run):
    assert type(attnmt.load(seq2seq_run)).__name__ == "TranslationModel"
    with pytest.raises(UserError, match="not a run directory"):
        attnmt.load(trained.parent)
