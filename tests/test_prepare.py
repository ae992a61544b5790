"""Prepared data: the cache, its key, atomic writes, parallel = serial, the tokenizer's sample."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_train_cli import attnmt

from attnmt.data import prepare as prep
from attnmt.data.prepare import SplitSpec, prepare_split, sample_texts
from attnmt.data.tokenizers import Vocabs
from attnmt.errors import DataError


@pytest.fixture
def corpus(tmp_path) -> tuple[SplitSpec, Path]:
    rng = np.random.default_rng(0)
    words = ["a", "b", "c", "d", "e", "f", "g"]
    src = [" ".join(rng.choice(words, rng.integers(1, 9))) for _ in range(5000)]
    src[10] = ""                                                   # an empty pair
    src[20] = " ".join(["a"] * 40)                                 # over max_len
    (tmp_path / "train.x").write_text("".join(s + "\n" for s in src))
    (tmp_path / "train.y").write_text("".join(" ".join(s.split()[::-1]) + "\n" for s in src))
    vocab = tmp_path / "vocab"
    Vocabs.train("word", src, src, 0, joint=True).save(vocab)
    spec = SplitSpec("pairs", (str(tmp_path / "train.x"), str(tmp_path / "train.y")), "train",
                     "translate", 30)
    return spec, vocab


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "meta.json"}


def test_prepared_arrays_hold_every_kept_pair_and_count_the_rest(corpus, tmp_path):
    spec, vocab = corpus
    folder = prepare_split(spec, vocab, tmp_path / "cache", workers=2, log=lambda *_: None)
    info = prep.meta(folder)
    assert (info["lines"], info["empty"], info["long"], info["kept"]) == (5000, 1, 1, 4998)
    arrays = prep.load_arrays(folder)
    assert isinstance(arrays["src_flat"], np.memmap) and len(arrays["src_off"]) == 4999
    tok = Vocabs.load(vocab).src
    first = arrays["src_flat"][arrays["src_off"][0]: arrays["src_off"][1]]
    line = (Path(spec.files[0]).read_text().splitlines()[0])
    assert first.tolist() == tok.encode(line)


def test_parallel_workers_write_the_same_bytes_as_one(corpus, tmp_path, monkeypatch):
    spec, vocab = corpus
    monkeypatch.setattr(prep, "CHUNK_LINES", 700)          # several chunks, out of order
    one = prepare_split(spec, vocab, tmp_path / "one", workers=1, log=lambda *_: None)
    two = prepare_split(spec, vocab, tmp_path / "two", workers=2, log=lambda *_: None)
    assert _files(one) == _files(two)


def test_the_cache_is_reused_and_a_changed_file_prepares_again(corpus, tmp_path):
    spec, vocab = corpus
    root = tmp_path / "cache"
    first = prepare_split(spec, vocab, root, log=lambda *_: None)
    stamp = (first / "meta.json").stat().st_mtime_ns
    assert prepare_split(spec, vocab, root, log=lambda *_: None) == first
    assert (first / "meta.json").stat().st_mtime_ns == stamp
    with open(spec.files[0], "a") as f, open(spec.files[1], "a") as g:
        f.write("a b\n")
        g.write("b a\n")
    second = prepare_split(spec, vocab, root, log=lambda *_: None)
    assert second != first and prep.meta(second)["lines"] == 5001
    other = SplitSpec(spec.kind, spec.files, spec.name, spec.pack, 10)   # another max_len
    assert prepare_split(other, vocab, root, log=lambda *_: None) not in (first, second)


def test_a_killed_preparation_leaves_nothing_a_later_run_uses(corpus, tmp_path, monkeypatch):
    spec, vocab = corpus
    root = tmp_path / "cache"
    root.mkdir()
    key = prep.cache_key(spec, vocab)
    stale = root / f".train-{key}.999.tmp"                # what a SIGKILL leaves behind
    stale.mkdir()
    (stale / "src.tokens").write_bytes(b"\x00" * 10)

    def dies(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(prep, "_write_arrays", dies)
    with pytest.raises(KeyboardInterrupt):
        prepare_split(spec, vocab, root, log=lambda *_: None)
    assert sorted(p.name for p in root.iterdir()) == [stale.name]   # no folder, no new tmp
    monkeypatch.undo()
    folder = prepare_split(spec, vocab, root, log=lambda *_: None)
    assert prep.meta(folder)["kept"] == 4998


def test_a_corrupt_line_deep_in_a_large_file_names_it_and_writes_nothing(tmp_path, corpus):
    _, vocab = corpus
    lines = [b"a b c\n"] * 60000
    lines[43210] = b"a \xff b\n"
    (tmp_path / "big.x").write_bytes(b"".join(lines))
    (tmp_path / "big.y").write_bytes(b"a b c\n" * 60000)
    spec = SplitSpec("pairs", (str(tmp_path / "big.x"), str(tmp_path / "big.y")), "big",
                     "translate", 30)
    with pytest.raises(DataError, match=r"big.x line 43211 is not valid UTF-8"):
        prepare_split(spec, vocab, tmp_path / "cache", workers=2, log=lambda *_: None)
    assert not list((tmp_path / "cache").iterdir())
    (tmp_path / "big.x").write_bytes(b"a b c\n" * 59999)
    with pytest.raises(DataError, match=r"big.x has 59999 lines but .*big.y has 60000"):
        prepare_split(spec, vocab, tmp_path / "cache", log=lambda *_: None)


def test_the_tokenizer_sample_is_uniform_bounded_and_seeded(tmp_path):
    (tmp_path / "t.x").write_text("".join(f"w{i}\n" for i in range(5000)))
    (tmp_path / "t.y").write_text("".join(f"v{i}\n" for i in range(5000)))
    spec = SplitSpec("pairs", (str(tmp_path / "t.x"), str(tmp_path / "t.y")), "t",
                     "translate", 30)
    a, b = sample_texts(spec, 1000, seed=1), sample_texts(spec, 1000, seed=1)
    assert a == b and len(a[0]) == len(a[1]) == 1000
    assert all(x[1:] == y[1:] for x, y in zip(*a))                 # pairs stay pairs
    assert sample_texts(spec, 1000, seed=2) != a
    picked = np.array([int(x[1:]) for x in a[0]])
    assert (np.diff(picked) > 0).all()                             # in file order
    assert np.histogram(picked, bins=5, range=(0, 5000))[0].min() > 150   # from everywhere
    assert sample_texts(spec, 10**6, seed=1)[0] == [f"w{i}" for i in range(5000)]


def test_data_prepare_command_then_training_starts_from_the_cache(task, tmp_path):
    from conftest import TINY_TRANSFORMER, config

    cfg = config(task, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=2, valid_every=2)
    cache = tmp_path / "cache"
    env = {"ATTNMT_CACHE": str(cache)}
    r = attnmt("data", "prepare", cfg, "--out", tmp_path / "run", env=env)
    assert "prepared into" in r.stdout
    made = {p: p.stat().st_mtime_ns for p in (cache / "prepared").iterdir()}
    r = attnmt("train", cfg, "--out", tmp_path / "run", env=env)
    assert "prepared into" not in r.stdout + r.stderr                # a cache hit
    assert {p: p.stat().st_mtime_ns for p in (cache / "prepared").iterdir()} == made
    recorded = (tmp_path / "run/prepared.json").read_text()
    assert all(str(p) in recorded for p in made)
    assert os.environ.get("ATTNMT_CACHE") != str(cache)
