"""Attention beside attributions: Spearman's correlation, Captum's gradients wired to the
right output token, masking equal to the explainer's intervention, a trained model whose
methods agree where the task leaves no doubt, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnmt.explain.attribution import _Forced, agreement, attribute, spearman
from attnmt.symbols import BOS, EOS


@given(st.lists(st.integers(-1000, 1000), min_size=3, max_size=12, unique=True))
def test_spearman_is_a_rank_correlation(x):
    assert spearman(x, x) == pytest.approx(1.0)
    assert spearman(x, [-v for v in x]) == pytest.approx(-1.0)
    assert spearman(x, [v ** 3 + 7 for v in x]) == pytest.approx(1.0)   # monotone: same ranks


def test_spearman_shares_ranks_between_ties_and_has_none_for_a_constant():
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833)   # ties share rank 1.5
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_agreement_per_pair_of_methods():
    scores = {"attention": np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7]]),
              "masking": np.array([[-3.0, -0.1, 0.0], [0.0, -0.5, -2.0]])}
    a = agreement(scores)["attention~masking"]
    assert a["spearman"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert a["mean"] == pytest.approx(1.0) and a["top1"] == 1.0


@pytest.fixture(scope="module")
def translator(trained):
    from attnmt.inference.translator import Translator

    return Translator.from_run(trained)


def _forced(translator, text):
    src_ids = translator.encode_source(text)
    tgt_ids = [*translator.translate([text], beam=1)[0][0].tokens, EOS]
    return _Forced(translator, src_ids, tgt_ids), src_ids, tgt_ids


def test_each_output_tokens_gradient_is_its_own(translator):
    """Row t of input x gradient is d log p(token t) / d embedding x embedding, computed
    here one token at a time without Captum."""
    text = "c a f b"
    found = attribute(translator, text)
    forced, _, tgt_ids = _forced(translator, text)
    emb = forced.embedded()
    for t in (0, len(tgt_ids) - 1):
        x = emb.clone().requires_grad_()
        (grad,) = torch.autograd.grad(forced(x)[0, t], x)
        expected = (grad * emb).sum(-1)[0].numpy()
        assert np.allclose(found["methods"]["input_x_gradient"][t], expected, atol=1e-5)


def test_masking_is_the_change_one_masked_decode_gives(translator):
    text = "d b e"
    forced, src_ids, tgt_ids = _forced(translator, text)
    table = forced.masking()
    model = translator.model
    for s in range(len(src_ids)):
        with torch.no_grad():
            src, lengths = translator.pad_batch([src_ids])
            logp = []
            for masked in (False, True):
                enc = model.encode(src, lengths)
                if masked:
                    enc.mask = enc.mask.clone()
                    enc.mask[0, s] = False
                state, total = model.init_state(enc), []
                for t, prev in enumerate([BOS, *tgt_ids[:-1]]):
                    logits, state, _ = model.decode_step(torch.tensor([prev]), state)
                    total.append(float(torch.log_softmax(logits[0], -1)[tgt_ids[t]]))
                logp.append(np.array(total))
        assert np.allclose(table[:, s], logp[1] - logp[0], atol=1e-4)


@pytest.mark.numerics
def test_on_the_reverse_task_the_methods_agree_where_the_answer_is_plain(translator, task):
    """Reversing letters, output word t comes from one source word: masking it must hurt
    most, and the attention must point to it; integrated gradients add up to the change
    from the zero embedding."""
    src = (task / "test.src").read_text().splitlines()[:10]
    tops = []
    for text in src:
        found = attribute(translator, text, ig_steps=64)
        tops.append(found["agreement"]["attention~masking"]["top1"])
        ig = found["methods"]["integrated_gradients"]
        assert found["ig_delta"] < 0.1 * np.abs(ig.sum(1)).max() + 0.05, found["ig_delta"]
    assert np.mean(tops) >= 0.8, tops


def _explain(*args):
    return subprocess.run([sys.executable, "-m", "attnmt.cli", "explain", *map(str, args)],
                          capture_output=True, text=True)


def test_explain_attribution_from_the_command_line(trained, seq2seq_run, tmp_path):
    r = _explain(trained, "c a f b", "--attribution", "--step", 1, "--json", tmp_path / "a.json",
                 "--png", tmp_path / "a.png")
    assert r.returncode == 0, r.stderr
    assert "integrated" not in r.stderr and "int. grads" in r.stdout and "Spearman" in r.stdout
    data = json.loads((tmp_path / "a.json").read_text())
    a = data["attribution"]
    assert list(a["methods"]) == ["attention", "input_x_gradient", "integrated_gradients",
                                  "masking"]
    assert np.shape(a["methods"]["masking"]) == (len(data["steps"]), len(data["src_tokens"]))
    assert (tmp_path / "a.png").stat().st_size > 10_000
    r = _explain(seq2seq_run, "c a f b", "--attribution", "--json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr          # no attention: the two gradient methods
    assert set(json.loads((tmp_path / "s.json").read_text())["attribution"]["methods"]) == {
        "input_x_gradient", "integrated_gradients"}
    for args, message in [(("  ", "--attribution"), "the text is empty"),
                          ((" ".join(["a"] * 5000), "--attribution"), "the source has 5000 "
                                                                      "tokens"),
                          (("a b", "--attribution", "--timeline"), "--attribution apply to")]:
        r = _explain(trained, *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_attribution_needs_gradients(trained):
    from attnmt.api import TranslationModel
    from attnmt.errors import UserError

    with pytest.raises(UserError, match="int8 model"):
        TranslationModel(trained, precision="int8").attribute("a b")
