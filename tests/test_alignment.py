"""Word alignments from attention: the metric against hand-made cases, the synthetic gold,
a trained model's alignment of the reverse task, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnmt.data.pharaoh import Gold, parse_pharaoh, to_pharaoh
from attnmt.errors import UserError
from attnmt.inference.alignment import align, extract, head_scores, read_gold, score, word_matrix


def test_aer_precision_and_recall_of_a_hand_made_alignment():
    gold = parse_pharaoh("0-0 1-1 2?2", "gold line 1")
    assert gold.sure == {(0, 0), (1, 1)} and gold.possible == {(0, 0), (1, 1), (2, 2)}
    # A = {0-0, 1-2, 2-2}: |A∩S| = 1, |A∩P| = 2 -> AER = 1 - 3/5
    assert score([{(0, 0), (1, 2), (2, 2)}], [gold]) == {
        "aer": 40.0, "precision": 66.67, "recall": 50.0, "sentences": 1}
    assert score([set()], [gold])["aer"] == 100.0


links = st.sets(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=20)


@given(sure=links, extra=links)
def test_the_sure_links_themselves_score_perfectly(sure, extra):
    gold = Gold(sure, sure | extra)
    result = score([set(sure)], [gold])
    assert result["aer"] == 0.0
    assert result["precision"] == result["recall"] == (100.0 if sure else None)
    assert parse_pharaoh(to_pharaoh(sure), "x").sure == sure


def test_a_malformed_link_names_the_file_and_line():
    with pytest.raises(UserError, match=r"g.align line 3: '0:1' is not an alignment link"):
        parse_pharaoh("0-0 0:1", "g.align line 3")


def test_token_weights_are_gathered_into_words():
    # target: two words, the first of two tokens; source: words of 1 and 2 tokens; </s> last
    weights = np.array([[0.7, 0.2, 0.1, 0.0],
                        [0.1, 0.5, 0.4, 0.0],
                        [0.0, 0.1, 0.8, 0.1],
                        [0.0, 0.0, 0.1, 0.9]])
    words = word_matrix(weights, [0, 1, 1], [0, 0, 1])
    assert np.allclose(words, [[0.4, 0.6], [0.0, 0.9]])
    assert extract(words) == {(1, 0), (1, 1)}
    assert extract(words, "threshold", 0.35) == {(0, 0), (1, 0), (1, 1)}
    shifted = word_matrix(weights, [0, 1, 1], [0, 0, 1], shift=True)   # rows 1.. instead
    assert np.allclose(shifted, [[0.05, 0.9], [0.0, 0.1]])


def test_synthetic_splits_come_with_their_gold_alignment(tmp_path):
    from attnmt.data.synthetic import write_task

    write_task(tmp_path / "rev", "reverse", n=20, n_valid=5, n_test=5, seed=3)
    src = (tmp_path / "rev/test.src").read_text().splitlines()
    for line, gold in zip(src, (tmp_path / "rev/test.align").read_text().splitlines(),
                          strict=True):
        n = len(line.split())
        assert parse_pharaoh(gold, "").sure == {(k, n - 1 - k) for k in range(n)}
    write_task(tmp_path / "num", "numbers", n=20, n_valid=5, n_test=30, max_items=4,
               max_value=999, seed=3)
    pairs = zip((tmp_path / "num/test.de").read_text().splitlines(),
                (tmp_path / "num/test.en").read_text().splitlines(), strict=True)
    golds = read_gold(str(tmp_path / "num/test.align"), *zip(*pairs, strict=True))
    assert len(golds) == 30 and all(g.possible for g in golds)
    assert any(g.possible - g.sure for g in golds)      # "zweihundert" -> "two hundred"


@pytest.mark.numerics
def test_a_trained_model_aligns_the_reverse_task_along_the_anti_diagonal(trained, task):
    from attnmt.inference.translator import Translator

    translator = Translator.from_run(trained)
    src = (task / "test.src").read_text().splitlines()
    tgt = (task / "test.tgt").read_text().splitlines()
    golds = read_gold(str(task / "test.align"), src, tgt)
    scores = head_scores(translator, src, tgt, golds)
    best_head = min(h["aer"] for h in scores["heads"])
    # measured 2.72..6.61 (mean) and 5.45..10.51 (best head) over seeds x kernel settings
    # (benchmarks/results/test_margins.json)
    assert scores["mean"]["aer"] <= 15 and best_head <= 20, scores
    links, written = align(translator, src[:3], tgt[:3])
    assert written == tgt[:3] and all(len(x) == len(t.split()) for x, t in zip(
        links, tgt, strict=False))


def _align(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "attnmt.cli", "align", *map(str, args)],
                          capture_output=True, text=True, input=stdin)


def test_align_from_the_command_line_and_its_one_line_errors(trained, task, seq2seq_run,
                                                            tmp_path):
    src, tgt, gold = task / "test.src", task / "test.tgt", task / "test.align"
    r = _align(trained, "-i", src, "-t", tgt, "--gold", gold, "-o", tmp_path / "out.align",
               "--layer", 1, "--json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    assert "AER" in r.stdout and (tmp_path / "s.json").is_file()
    out = (tmp_path / "out.align").read_text().splitlines()
    assert len(out) == len(src.read_text().splitlines())
    r = _align(trained, "--with-translation", stdin="a b c\n\n")
    assert r.returncode == 0 and r.stdout.split("\n")[1] == "\t", r.stdout
    short = tmp_path / "short.align"
    short.write_text("0-0\n")
    wrong = tmp_path / "wrong.align"
    wrong.write_text("".join("0-99\n" for _ in src.read_text().splitlines()))
    r = _align(trained, stdin="a b\n" + " ".join(["a"] * 5000) + "\n")
    assert r.returncode == 2 and "line 2: the source has 5000 tokens and the model reads at " \
        "most" in r.stderr, r.stderr
    for args, message in [
        ((trained, "-i", src, "-t", tgt, "--gold", short), "has 1 lines and the source"),
        ((trained, "-i", src, "-t", tgt, "--gold", wrong), "line 1: link 0-99 is past"),
        ((trained, "-i", src, "--gold", gold), "--gold needs --target"),
        ((trained, "-i", src, "-t", short), "the target file has 1 lines"),
        ((trained, "-i", src, "--layer", 9), "--layer 9 is out of range"),
        ((seq2seq_run, "-i", src), "no attention"),
    ]:
        r = _align(*args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
