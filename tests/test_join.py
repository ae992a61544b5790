"""``data.join``: long training examples made of real sentence pairs, and the joined test
sets a study scores by length."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import TINY_TRANSFORMER, config

from attnmt.data.batching import EncodedSet, JoinedSet, epoch_batches
from attnmt.data.tokenizers import SPACE, CharTokenizer, SentencePieceTokenizer, WordTokenizer
from attnmt.symbols import EOS, PAD


def _set(n: int = 200, seed: int = 0) -> EncodedSet:
    rng = np.random.default_rng(seed)
    src = [list(rng.integers(4, 50, size=rng.integers(1, 9))) for _ in range(n)]
    tgt = [list(rng.integers(4, 50, size=rng.integers(1, 9))) for _ in range(n)]
    return EncodedSet(src, tgt)


def _members(joined: JoinedSet, epoch: int) -> tuple[list[int], list[list[int]]]:
    """The epoch's single pairs and its groups, read back through the ids it hands out."""
    singles, groups = [], []
    for i in joined.epoch_ids(1, epoch):
        if i < len(joined):
            singles.append(int(i))
        else:
            plan, g = joined._group(i)
            groups.append(plan["members"][plan["offsets"][g]: plan["offsets"][g + 1]].tolist())
    return singles, groups


@pytest.mark.parametrize("n, fraction", [(200, 0.5), (9, 1.0), (10, 0.1), (3, 0.4), (57, 0.7)])
@pytest.mark.parametrize("seed", range(5))
def test_every_pair_is_seen_once_per_epoch_and_a_fraction_joined(n, fraction, seed):
    data = _set(n)
    joined = JoinedSet(data, fraction=fraction, max_k=4, limit=1000, seed=seed)
    singles, groups = _members(joined, 0)
    seen = singles + [i for g in groups for i in g]
    assert sorted(seen) == list(range(len(data)))
    assert all(2 <= len(g) <= 4 for g in groups)
    wanted = round(fraction * n)
    assert sum(map(len, groups)) in ((wanted - 1, wanted) if wanted >= 2 else (0,))
    if n == 200:
        assert {len(g) for g in groups} == {2, 3, 4}
        assert _members(joined, 1) != (singles, groups)      # a new draw each epoch


def test_a_joined_example_is_its_pairs_in_order_with_lengths_as_planned():
    data = _set()
    joined = JoinedSet(data, fraction=0.6, max_k=3, limit=1000, seed=1,
                       separators=([3 + 40], []))
    ids = joined.epoch_ids(1, 2)
    ids = ids[ids >= len(data)][:5]
    batch = joined.batch(ids)
    src_lens, tgt_lens = joined.lengths(ids)
    assert batch.src_lengths.tolist() == src_lens.tolist()
    assert (batch.tgt_out != PAD).sum(1).tolist() == tgt_lens.tolist()
    for row, i in enumerate(ids):
        plan, g = joined._group(i)
        members = plan["members"][plan["offsets"][g]: plan["offsets"][g + 1]]
        want_src = []
        for k, m in enumerate(members):
            want_src += ([43] if k else []) + data.src_ids(m).tolist()
        want_tgt = [t for m in members for t in data.tgt_ids(m).tolist()]
        assert batch.src[row, : src_lens[row]].tolist() == want_src + [EOS]
        assert batch.tgt_out[row, : tgt_lens[row]].tolist() == want_tgt + [EOS]


def test_groups_over_the_limit_stay_single_and_batches_keep_their_budget():
    data = _set()
    joined = JoinedSet(data, fraction=1.0, max_k=4, limit=12, seed=3)
    ids = joined.epoch_ids(1, 0)
    src, tgt = joined.lengths(ids)
    assert max(src.max(), tgt.max()) <= 12
    assert (ids >= len(data)).sum() > 5 and (ids < len(data)).sum() > 5
    for b in epoch_batches(joined, 60, seed=1, epoch=0):
        batch = joined.batch(b)
        assert batch.src.numel() <= 60 and batch.tgt_in.numel() <= 60


def test_a_new_instance_draws_the_same_epoch_so_resume_is_exact():
    a = JoinedSet(_set(), fraction=0.5, max_k=4, limit=1000, seed=7)
    b = JoinedSet(_set(), fraction=0.5, max_k=4, limit=1000, seed=7)
    a.epoch_ids(1, 0)
    late = b.epoch_ids(1, 5)                     # b starts at a later epoch, as after resume
    assert np.array_equal(a.epoch_ids(1, 5), late)
    assert all((x == y).all() for x, y in zip(a.batch(late[-8:]).__dict__.values(),
                                              b.batch(late[-8:]).__dict__.values()))


def test_separator_is_a_space_only_where_spaces_are_tokens():
    chars = CharTokenizer.train(["ab cd"])
    assert [chars.piece(i) for i in chars.separator()] == [SPACE]
    assert WordTokenizer.train(["a b"]).separator() == []
    texts = [f"{w} {v}." for w in ("ein", "zwei", "drei", "vier") for v in ("Hund", "Mann")]
    pieces = SentencePieceTokenizer.train(texts * 20, 40)
    assert pieces.separator() == []
    assert pieces.encode("ein Hund. zwei Mann.") == pieces.encode("ein Hund.") + \
        pieces.encode("zwei Mann.")


def test_training_with_joined_pairs_sees_long_examples(task, tmp_path):
    from attnmt.config import load_config
    from attnmt.rundir import RunDir
    from attnmt.training.loop import train
    from attnmt.training.tasks import make_task

    path = config(task, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=10, valid_every=10)
    raw = yaml.safe_load(path.read_text())
    raw["data"].update(join=0.5, join_max=3)
    cfg = load_config(raw=raw)
    train(cfg, tmp_path / "run", quiet=True)
    data = make_task(cfg, RunDir(tmp_path / "run"), log=lambda *_: None).train
    assert isinstance(data, JoinedSet)
    ids = data.epoch_ids(cfg.train.seed, 0)
    longest = max(data.lengths(ids)[0])
    assert longest > data.data.src_lens.max()          # longer than any single pair
    assert (RunDir(tmp_path / "run").ckpt / "finished.json").is_file()


@pytest.mark.parametrize("extra, message", [
    ({"spm_alpha": 0.1, "tokenizer": "sentencepiece"}, "cannot be used together"),
    ({"task": "classify"}, "applies to translation pairs"),
])
def test_join_is_refused_where_it_cannot_apply(extra, message):
    from attnmt.config import load_config
    from attnmt.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(raw={"data": {"join": 0.5, **extra}})


def test_a_study_scores_joined_test_pairs_by_k_and_resumes(task, tmp_path):
    from test_compare import study_file

    from attnmt.errors import ConfigError
    from attnmt.studies.compare import compare, load_study

    path = study_file(tmp_path, task, runs=[{"name": "dot", "preset": "rnn-dot",
                                             "set": {"data.join": 0.5}}])
    raw = yaml.safe_load(path.read_text())
    raw["eval"].update(join=3, edges=[5, 10])
    path.write_text(yaml.safe_dump(raw))
    report = compare(path, tmp_path / "out", log=lambda *_: None)
    rows = report["runs"]["dot"]["by_join"]
    assert [(r["k"], r["n"]) for r in rows] == [(1, 60), (2, 30), (3, 20)]
    assert all(r["ci95"][0] <= r["exact"] <= r["ci95"][1] for r in rows)
    assert all(r["length_ratio"] > 0 for r in rows)
    assert sum(b["n"] for b in report["runs"]["dot"]["by_length"]) == 110
    md = (tmp_path / "out/report.md").read_text()
    assert "by joined test pairs" in md and "| k = 1 | k = 2 | k = 3 |" in md
    assert "Output length over reference length" in md
    again = compare(path, tmp_path / "out", log=lambda *_: None)
    assert again["runs"]["dot"]["by_join"] == rows
    bad = study_file(tmp_path, task, eval={"join": 0})
    with pytest.raises(ConfigError, match="eval join must be"):
        load_study(bad)


def test_joined_test_pairs_are_consecutive_pairs_in_order():
    from attnmt.data.corpus import Corpus
    from attnmt.studies.compare import joined_test

    test = Corpus(src=["a", "b", "c", "d", "e"], tgt=["A", "B", "C", "D", "E"])
    joined, ks = joined_test(test, 3)
    assert joined.src == ["a", "b", "c", "d", "e", "a b", "c d", "a b c"]
    assert joined.tgt == ["A", "B", "C", "D", "E", "A B", "C D", "A B C"]
    assert ks == [1, 1, 1, 1, 1, 2, 2, 3]
    assert joined_test(test, 1)[0].src == test.src
