"""The Python API: ``attnmt.load`` gives the objects the CLI and the server use."""

from __future__ import annotations

import math

import pytest

import attnmt
from attnmt.errors import UserError

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics


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
    averaged = m.translator.translate(["a b c d"], beam=3, alpha=1.0, penalty="average")[0][0]
    logprob = m.score(["a b c d"], [averaged.text])[0]
    assert averaged.score == pytest.approx(logprob / (len(averaged.tokens) + 1), abs=1e-4)
    worse = m.score(["a b c d"], ["a b c d"])[0]
    assert worse < scores[0] and math.isfinite(worse)
    with pytest.raises(UserError, match="one target per source"):
        m.score(["a"], [])


def test_load_knows_every_task(trained, seq2seq_run):
    assert type(attnmt.load(seq2seq_run)).__name__ == "TranslationModel"
    with pytest.raises(UserError, match="not a run directory"):
        attnmt.load(trained.parent)


@pytest.mark.parametrize("scorer", ["dot", "general", "concat", "additive"])
def test_five_steps_are_the_numbers_the_model_uses(task, tmp_path, scorer):
    """Step 2's scores, softmaxed, are step 3's weights; step 4's context is the
    weighted sum of the values; the chosen words spell the translation."""
    import numpy as np
    from conftest import config

    from attnmt.config import load_config
    from attnmt.training.loop import train

    model = {"preset": f"rnn-{scorer}", "emb_size": 16, "enc_hidden": 16, "dec_hidden": 32}
    train(load_config(config(task, tmp_path / "c.yaml", model, max_steps=3, valid_every=3)),
          tmp_path / "run", quiet=True)
    shown = attnmt.load(tmp_path / "run").five_steps("a b c")
    assert shown["scorer"] == scorer and len(shown["steps"]) == len(shown["tgt_tokens"])
    assert [s["chosen"] for s in shown["steps"]] == shown["tgt_tokens"]
    for step in shown["steps"]:
        scores, weights = step["scores"][0], step["weights"][0]
        e = np.exp(scores - scores.max())
        assert np.allclose(e / e.sum(), weights, atol=1e-5)
        assert np.allclose(weights @ step["values"], step["context"][0], atol=1e-5)
        assert abs(sum(p for _, p in step["top"]) - 1) <= 1 and step["top"][0][1] >= \
            step["top"][-1][1]


def test_five_steps_of_the_fixed_context_model_show_one_vector(seq2seq_run):
    import numpy as np

    shown = attnmt.load(seq2seq_run).five_steps("a b c")
    contexts = [s["context"] for s in shown["steps"]]
    assert shown["scorer"] is None and all(np.array_equal(c, contexts[0]) for c in contexts)
