"""Encoder-only classifier (with MLM pre-training) and decoder-only LM on toy data."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from attnmt.config import load_config
from attnmt.errors import DataError, UserError
from attnmt.training.loop import train

# the outcome depends on floating-point kernels: also run under other kernel settings
# (`make test-portable`, tests/kernel_settings.py)
pytestmark = pytest.mark.numerics

TINY = {"preset": "transformer-tiny", "d_model": 32, "ffn": 64, "heads": 4, "dropout": 0.0,
        "enc_layers": 2, "dec_layers": 2, "max_positions": 64}


def cfg(folder, task, **train_keys):
    return load_config(raw={
        "data": {"dir": str(folder), "task": task, "src": "txt", "tokenizer": "word",
                 "train": "train", "valid": "val", "test": "test", "max_len": 60},
        "model": TINY,
        "train": {"max_tokens": 800, "lr": 0.003, "warmup": 20, "schedule": "constant",
                  "label_smoothing": 0.0, "valid_every": 100, "threads": 1,
                  "best_metric": "loss", **train_keys}})


def write_toy(folder):
    """Class = which of two small alphabets a line is drawn from; text = the same lines."""
    rng = random.Random(0)
    alphabets = {"left": "a b c d e f".split(), "right": "d e f g h i".split()}
    for split, n in (("train", 1500), ("val", 100), ("test", 200)):
        rows = []
        for _ in range(n):
            label = rng.choice(sorted(alphabets))
            rows.append((" ".join(rng.choice(alphabets[label]) for _ in range(rng.randint(3, 9))),
                         label))
        (folder / f"{split}.tsv").write_text("".join(f"{t}\t{y}\n" for t, y in rows))
        (folder / f"{split}.txt").write_text("".join(f"{t}\n" for t, _ in rows))
    return folder


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp("toy"))


def test_classifier_learns_and_evaluates(toy, tmp_path):
    from attnmt.api import Classifier

    train(cfg(toy, "classify", max_steps=200, best_metric="accuracy"), tmp_path / "clf",
          quiet=True)
    clf = Classifier(tmp_path / "clf")
    result = clf.evaluate("test")
    # measured 97.5..98.5 (benchmarks/results/test_margins.json)
    assert result["accuracy"] >= 90 and result["labels"] == ["left", "right"]
    assert np.array(result["confusion"]).sum() == 200
    assert clf.classify(["a b c a b", "", "g h i g"]) [0][0] == "left"
    assert clf.classify(["a b c a b", "", "g h i g"])[1] == ("", 0.0)
    att = clf.attention("a b g")
    assert np.allclose(np.array(att["weights"]).sum(-1), 1, atol=1e-4)
    assert att["src_tokens"] == att["tgt_tokens"] == ["<s>", "a", "b", "g", "</s>"]


def test_mlm_pretraining_then_fine_tuning(toy, tmp_path, monkeypatch):
    train(cfg(toy, "mlm", max_steps=30, valid_every=30), tmp_path / "mlm", quiet=True)
    from attnmt.data.tokenizers import Vocabs

    def no_new_vocabulary(*args, **kwargs):
        raise AssertionError("a fine-tuned run must reuse the pre-trained run's vocabulary")

    monkeypatch.setattr(Vocabs, "train", no_new_vocabulary)
    fine = cfg(toy, "classify", max_steps=5, valid_every=5)
    fine.train.init_from = str(tmp_path / "mlm")
    from safetensors.torch import load_file

    from attnmt.training.loop import Trainer

    trainer = Trainer(fine, tmp_path / "clf", quiet=True)
    pre = load_file(tmp_path / "mlm/checkpoints/best.safetensors")
    own = trainer.model.state_dict()
    key = "layers.0.self_attn.q_proj.weight"
    assert torch.equal(own[key], pre[key])
    assert "head.1.weight" in own and "head.1.weight" not in pre
    # the inherited embeddings are indexed by the pre-training run's vocabulary
    for name in (tmp_path / "mlm/vocab").iterdir():
        if name.name == "made_from.json":        # what each vocabulary was made from
            continue
        assert (tmp_path / "clf/vocab" / name.name).read_bytes() == name.read_bytes()


def test_init_from_a_folder_without_a_run_is_one_line(toy, tmp_path):
    fine = cfg(toy, "classify", max_steps=5, valid_every=5)
    fine.train.init_from = str(tmp_path / "nothing-here")
    from attnmt.training.loop import Trainer

    with pytest.raises(UserError, match="nothing-here holds no vocabulary"):
        Trainer(fine, tmp_path / "clf", quiet=True)


def test_bad_tsv_lines_name_the_line(toy, tmp_path):
    from attnmt.api import Classifier

    bad = tmp_path / "bad"
    bad.mkdir()
    for split in ("train", "val"):
        (bad / f"{split}.tsv").write_text((toy / f"{split}.tsv").read_text())
    (bad / "train.tsv").write_text((toy / "train.tsv").read_text() + "no tab on this line\n")
    with pytest.raises(DataError, match=r"train.tsv line 1501 has 0 tabs"):
        train(cfg(bad, "classify", max_steps=2), tmp_path / "r1", quiet=True)
    train(cfg(toy, "classify", max_steps=2, valid_every=2), tmp_path / "r2", quiet=True)
    (bad / "test.tsv").write_text("a b\tleft\na b\tmiddle\n")
    with pytest.raises(DataError, match=r"test.tsv line 2: unknown label 'middle'"):
        Classifier(tmp_path / "r2").evaluate("test", bad)


def write_pattern(folder):
    """Lines of a repeating a-b-c cycle from a random start: a language model's easy task."""
    rng = random.Random(1)
    for split, n in (("train", 600), ("val", 50), ("test", 50)):
        lines = []
        for _ in range(n):
            start = rng.randrange(3)
            lines.append(" ".join("abc"[(start + i) % 3] for i in range(rng.randint(6, 20))))
        (folder / f"{split}.txt").write_text("".join(x + "\n" for x in lines))
    return folder


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    return write_pattern(tmp_path_factory.mktemp("pattern"))


def test_language_model_learns_a_pattern_and_cache_equals_no_cache(pattern, tmp_path):
    from attnmt.api import LanguageModel

    train(cfg(pattern, "lm", max_steps=150), tmp_path / "lm", quiet=True)
    lm = LanguageModel(tmp_path / "lm")
    assert lm.perplexity("test")["perplexity"] < 2.0   # measured 1.34..1.38 (test_margins.json)
    out = lm.generate("a b c a", max_new_tokens=8, temperature=0)
    assert out.startswith("a b c a b c a b")
    for seed in range(3):
        cached = lm.generate("b c", 12, temperature=1.0, seed=seed)
        plain = lm.generate("b c", 12, temperature=1.0, seed=seed, use_cache=False)
        assert cached == plain
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "generate", str(tmp_path / "lm"),
                        "--prompt", "c a", "--temperature", "0", "--max-new-tokens", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().startswith("c a b c a")
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "translate", str(tmp_path / "lm")],
                       capture_output=True, text=True, input="a\n")
    assert r.returncode == 2 and "use attnmt generate" in r.stderr
    att = lm.attention("a b c")
    layers = np.array(att["layers"])                                # (layers, heads, T, T)
    assert att["src_tokens"] == ["<s>", "a", "b", "c"] and layers.shape[2:] == (4, 4)
    assert np.allclose(layers.sum(-1), 1, atol=1e-4)
    assert np.abs(np.triu(layers, k=1)).max() == 0                  # nothing sees the future
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "plot", "attention",
                        str(tmp_path / "lm"), "a b c", "--layer", "1", "--head", "0",
                        "--out", str(tmp_path / "lm.png")], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "lm.png").stat().st_size > 0, r.stderr


def test_plot_curves_draws_runs_and_names_a_missing_metric(pattern, tmp_path):
    train(cfg(pattern, "lm", max_steps=60, valid_every=20), tmp_path / "a", quiet=True)
    command = [sys.executable, "-m", "attnmt.cli", "plot", "curves", str(tmp_path / "a")]
    r = subprocess.run([*command, "--metric", "ppl", "--x", "updates", "--out",
                        str(tmp_path / "c.png")], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "c.png").stat().st_size > 0, r.stderr
    r = subprocess.run([*command, "--metric", "bleu"], capture_output=True, text=True)
    assert r.returncode == 2 and "records no 'bleu'" in r.stderr and "ppl" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([*command[:-1], str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "no validation records" in r.stderr


def test_langid_data_from_multi30k(multi30k_dir, tmp_path):
    from attnmt.data.langid import write_langid

    counts = write_langid(tmp_path, multi30k_dir, ("de", "en", "fr", "cs"))
    assert counts == {"train": 4 * 29000, "val": 4 * 1014, "test": 4 * 1000}
    rows = (tmp_path / "test.tsv").read_text().splitlines()
    assert {r.split("\t")[1] for r in rows} == {"de", "en", "fr", "cs"}
    assert rows[0].split("\t")[0] == (tmp_path / "test.txt").read_text().splitlines()[0]
    labels = [r.split("\t")[1] for r in rows[:20]]
    assert len(set(labels)) > 1                      # shuffled, languages interleaved
