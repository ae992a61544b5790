"""Corpora as users have them: TSV and JSON Lines files, several weighted corpora, filters
counted rule by rule, SentencePiece sampling — and bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_TRANSFORMER, config

from attnmt.data import prepare as prep
from attnmt.data.batching import SampledSegmentation, WeightedSet
from attnmt.data.prepare import SplitSpec, prepare_split
from attnmt.data.tokenizers import SentencePieceTokenizer, Vocabs


def _pairs(folder: Path, split: str = "train") -> list[tuple[str, str]]:
    src = (folder / f"{split}.src").read_text().splitlines()
    tgt = (folder / f"{split}.tgt").read_text().splitlines()
    return list(zip(src, tgt))


def _write(folder: Path, stem: str, fmt: str, pairs: list[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "tsv":
        (folder / f"{stem}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    elif fmt == "jsonl":
        rows = [{"translation": {"src": s, "tgt": t}} if i % 2 else {"src": s, "tgt": t}
                for i, (s, t) in enumerate(pairs)]
        (folder / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        (folder / f"{stem}.src").write_text("".join(s + "\n" for s, _ in pairs))
        (folder / f"{stem}.tgt").write_text("".join(t + "\n" for _, t in pairs))


def _prepared(task_dir: Path, run: Path, **data) -> object:
    from attnmt.config import load_config
    from attnmt.rundir import RunDir
    from attnmt.training.tasks import make_task

    path = config(task_dir, run.with_suffix(".yaml"), TINY_TRANSFORMER)
    raw = yaml.safe_load(path.read_text())
    raw["data"].update(data)
    return make_task(load_config(raw=raw), RunDir(run), log=lambda *_: None)


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_tsv_and_jsonl_prepare_the_same_arrays_as_parallel_files(task, tmp_path, fmt):
    folder = tmp_path / fmt
    for split in ("train", "val", "test"):
        _write(folder, split, fmt, _pairs(task, split))
    ours = _prepared(folder, tmp_path / "a", format=fmt)
    plain = _prepared(task, tmp_path / "b")
    for name in ("train", "valid"):
        a, b = getattr(ours, name), getattr(plain, name)
        assert np.array_equal(a.src_flat, b.src_flat) and np.array_equal(a.tgt_flat, b.tgt_flat)
    assert ours.valid_ref == plain.valid_ref


@pytest.mark.parametrize("fmt, line, message", [
    ("tsv", "a b\tc\td", "train.tsv line 3 has 3 fields; expected source<TAB>target"),
    ("jsonl", '{"src": "a b"', "train.jsonl line 3 is not valid JSON"),
    ("jsonl", '{"de": "a", "en": "b"}', "train.jsonl line 3 has no 'src' and 'tgt' text"),
])
def test_a_malformed_line_is_one_line_naming_file_and_line(task, tmp_path, capsys, fmt, line,
                                                            message):
    from test_bad_input import run_cli

    folder = tmp_path / "data"
    pairs = _pairs(task)
    for split in ("train", "val", "test"):
        _write(folder, split, fmt, pairs[:20])
    path = folder / f"train.{fmt}"
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    cfg = config(folder, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=2)
    raw = yaml.safe_load(cfg.read_text())
    raw["data"]["format"] = fmt
    cfg.write_text(yaml.safe_dump(raw))
    code, err = run_cli(capsys, "train", cfg, "--out", tmp_path / "run")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_filters_count_each_rule(tmp_path):
    pairs = [("a b c", "c b a")] * 3                      # two exact duplicates
    pairs += [("d e", "d e")]                             # a copy
    pairs += [("a", "b")]                                 # shorter than min_len 2
    pairs += [("a b", "a b c d e f g")]                   # ratio 3.5 > 3
    pairs += [("", "x")]                                  # empty
    pairs += [(f"a b {w}", f"{w} b a") for w in "fghij"]  # kept
    _write(tmp_path, "train", "parallel", pairs)
    vocab = tmp_path / "vocab"
    texts = [s for s, _ in pairs] + [t for _, t in pairs]
    Vocabs.train("word", texts, texts, 0, joint=True).save(vocab)
    rules = {"min_len": 2, "ratio": 3.0, "dedup": True, "copies": True}
    spec = SplitSpec("pairs", (str(tmp_path / "train.src"), str(tmp_path / "train.tgt")),
                     "train", "translate", 30, langs=("src", "tgt"),
                     filters=tuple(sorted(rules.items())))
    info = prep.meta(prepare_split(spec, vocab, tmp_path / "c", workers=1, log=print))
    assert {k: info[k] for k in ("lines", "empty", "copy", "short", "ratio", "duplicate",
                                  "kept")} == {"lines": 12, "empty": 1, "copy": 1, "short": 1,
                                               "ratio": 1, "duplicate": 2, "kept": 6}
    arrays = prep.load_arrays(prep.prepare_split(spec, vocab, tmp_path / "c", workers=1))
    tok = Vocabs.load(vocab).src
    first = [tok.decode(arrays["src_flat"][arrays["src_off"][i]:arrays["src_off"][i + 1]])
             for i in range(6)]
    assert first == ["a b c", "a b f", "a b g", "a b h", "a b i", "a b j"]
    assert "2 skipped as duplicates" in prep.summary(info)


def test_weighted_corpora_are_drawn_by_weight_and_train(task, tmp_path):
    from attnmt.config import load_config
    from attnmt.training.loop import train

    pairs = _pairs(task)
    _write(tmp_path / "d", "big", "parallel", pairs[:1000])
    _write(tmp_path / "d", "small", "parallel", pairs[1000:1200])
    for split in ("val", "test"):
        _write(tmp_path / "d", split, "parallel", _pairs(task, split))
    path = config(tmp_path / "d", tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=20,
                  valid_every=20)
    raw = yaml.safe_load(path.read_text())
    raw["data"]["corpora"] = [{"path": "big", "weight": 0.5}, {"path": "small", "weight": 2}]
    raw["data"]["filter"] = {"dedup": True}
    cfg = load_config(raw=raw)
    train(cfg, tmp_path / "run", quiet=True)
    from attnmt.rundir import RunDir
    from attnmt.training.tasks import make_task

    data = make_task(cfg, RunDir(tmp_path / "run"), log=lambda *_: None).train
    assert isinstance(data, WeightedSet)
    kept = [len(p) for p in data.parts]
    assert data.counts(1, 0) == [round(0.5 * kept[0]), 2 * kept[1]]
    assert not np.array_equal(data.epoch_ids(1, 0), data.epoch_ids(1, 1))   # epochs differ
    recorded = json.loads((tmp_path / "run/prepared.json").read_text())
    assert set(recorded["counts"]) == {"big", "small", "val"}
    assert recorded["counts"]["big"]["lines"] == 1000


def test_corpus_weights_must_be_positive():
    from attnmt.config import load_config
    from attnmt.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.corpora\[1\].weight must be a positive"):
        load_config(raw={"data": {"corpora": [{"path": "a"}, {"path": "b", "weight": -1}]}})


def test_subword_sampling_varies_segmentation_but_not_text(tmp_path):
    from attnmt.data.batching import EncodedSet

    words = ("the quick brown fox jumps over lazy dog a runs in park children play with ball "
             "people walking street").split()
    texts = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(8)) for i in range(400)]
    tok = SentencePieceTokenizer.train(texts, 80)
    data = EncodedSet([tok.encode(t) for t in texts[:2]], [tok.encode(t) for t in texts[:2]])
    sampled = SampledSegmentation(data, tok, tok, 0.1, seed=1, max_len=100)
    seen = set()
    for seed in range(8):
        sampled.seed = seed
        batch = sampled.batch(np.array([0, 1]))
        row = [i for i in batch.src[0].tolist() if i > 3]
        assert tok.decode(row) == texts[0]
        seen.add(tuple(row))
    assert len(seen) > 1                                     # segmentations vary
    sampled.seed = 3
    again = sampled.batch(np.array([0, 1]))
    sampled.seed = 3
    assert np.array_equal(sampled.batch(np.array([0, 1])).src, again.src)   # seeded


def test_spm_alpha_needs_sentencepiece():
    from attnmt.config import load_config
    from attnmt.errors import ConfigError

    with pytest.raises(ConfigError, match="data.spm_alpha samples SentencePiece"):
        load_config(raw={"data": {"tokenizer": "word", "spm_alpha": 0.1}})


def test_langid_filter_drops_pairs_in_another_language(tmp_path):
    """A tiny classifier learns two letter 'languages' (a-j: xx, k-t: yy); pairs whose
    source is written in the target's language are filtered out."""
    from attnmt.config import load_config
    from attnmt.training.loop import train

    rng = np.random.default_rng(0)

    def sentence(letters: str) -> str:
        return " ".join("".join(rng.choice(list(letters), 3)) for _ in range(3))

    xx, yy = "abcdefghij", "klmnopqrst"
    lid = tmp_path / "lid"
    lid.mkdir()
    for split, n in (("train", 600), ("val", 60), ("test", 60)):
        rows = [f"{sentence(xx)}\txx" if i % 2 else f"{sentence(yy)}\tyy" for i in range(n)]
        (lid / f"{split}.tsv").write_text("".join(r + "\n" for r in rows))
    clf = {"data": {"task": "classify", "dir": str(lid), "tokenizer": "char"},
           "model": {**TINY_TRANSFORMER, "arch": "transformer"},
           "train": {"max_steps": 60, "valid_every": 60, "lr": 0.003, "warmup": 10,
                     "max_tokens": 2000, "threads": 1, "best_metric": "accuracy"}}
    train(load_config(raw=clf), tmp_path / "lid-run", quiet=True)
    pairs = [(sentence(xx), sentence(yy)) for _ in range(40)]
    pairs += [(sentence(yy), sentence(yy)) for _ in range(10)]
    _write(tmp_path / "mt", "train", "parallel", pairs)
    vocab = tmp_path / "vocab"
    texts = [s for s, _ in pairs] + [t for _, t in pairs]
    Vocabs.train("char", texts, texts, 0, joint=True).save(vocab)
    spec = SplitSpec("pairs", (str(tmp_path / "mt/train.src"), str(tmp_path / "mt/train.tgt")),
                     "train", "translate", 100, langs=("xx", "yy"),
                     filters=(("langid", str(tmp_path / "lid-run")),))
    info = prep.meta(prepare_split(spec, vocab, tmp_path / "c", workers=1))
    assert (info["langid"], info["kept"]) == (10, 40)
