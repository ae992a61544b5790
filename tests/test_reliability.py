"""What a hostile or unlucky user does: kills, broken files, full disks, odd input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_TRANSFORMER, config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from test_train_cli import attnmt

HERE = Path(__file__).parent
SMALL_RNN = {"preset": "rnn-additive", "emb_size": 16, "enc_hidden": 16, "dec_hidden": 32,
             "dropout": 0.3}


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all((x[k] == y[k]).all() for k in x)


@pytest.fixture(scope="module")
def uninterrupted(task, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("full")
    cfg = config(task, tmp / "c.yaml", SMALL_RNN, max_steps=12, valid_every=6,
                 valid_bleu=False, best_metric="loss")
    attnmt("train", cfg, "--out", tmp / "run", "--quiet")
    return cfg, tmp / "run"


@pytest.mark.numerics
@pytest.mark.parametrize("point", ["weights", "state", "best", "latest"])
def test_sigkill_at_each_point_of_a_checkpoint_resumes_exactly(uninterrupted, tmp_path, point):
    cfg, full = uninterrupted
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, str(HERE / "kill_at.py"), point, "12", "--", "train",
                        str(cfg), "--out", str(run), "--quiet"], capture_output=True, text=True)
    assert r.returncode == -9, r.stderr
    attnmt("train", cfg, "--out", run, "--quiet", "--resume")
    assert _same_weights(full / "checkpoints/step-0000012.safetensors",
                         run / "checkpoints/step-0000012.safetensors")
    best = json.loads((run / "checkpoints/best.json").read_text())
    assert best == json.loads((full / "checkpoints/best.json").read_text())
    assert _same_weights(full / "checkpoints/best.safetensors",
                         run / "checkpoints/best.safetensors")
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["type"] == "valid"]
    assert steps == [6, 12]                   # no validation recorded twice


@pytest.mark.numerics
def test_a_truncated_latest_checkpoint_falls_back_to_the_one_before(uninterrupted, tmp_path):
    import shutil

    cfg, full = uninterrupted
    run = tmp_path / "run"
    shutil.copytree(full, run)
    weights = run / "checkpoints/step-0000012.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])             # a torn copy
    (run / "checkpoints/latest.json").write_text("{not json")   # and a corrupt record
    r = attnmt("train", cfg, "--out", run, "--resume", "--set", "train.max_steps=12")
    log = r.stdout + r.stderr
    assert "resuming from step 6, the newest that loads" in log and "resumed from step 6" in log
    assert _same_weights(full / "checkpoints/step-0000012.safetensors", weights)
    # translate: a broken best falls back to the last checkpoint, saying so
    (run / "checkpoints/best.safetensors").write_bytes(b"broken")
    r = attnmt("translate", run, input="a b c\n")
    assert len(r.stdout.splitlines()) == 1 and "does not load" in r.stderr


def test_a_full_disk_is_one_line_naming_the_safe_checkpoint(task, tmp_path):
    cfg = config(task, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=12, valid_every=6,
                 valid_bleu=False, best_metric="loss", keep_last=5)
    attnmt("train", cfg, "--out", tmp_path / "run", "--quiet", "--set", "train.max_steps=6")
    size = (tmp_path / "run/checkpoints/step-0000006.train.pt").stat().st_size
    limit_kib = size // 1024 // 2                  # too small for the next training state
    r = subprocess.run(["bash", "-c", f"ulimit -f {limit_kib}; exec {sys.executable} -m "
                        f"attnmt.cli train {cfg} --out {tmp_path / 'run'} --quiet --resume"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "disk is full" in r.stderr and "step 6 is intact" \
        in r.stderr
    assert not list((tmp_path / "run/checkpoints").glob(".*.tmp"))
    assert json.loads((tmp_path / "run/checkpoints/latest.json").read_text())["step"] == 6


def _write_data(folder: Path, words: str, long_line: bool = False) -> Path:
    folder.mkdir()
    for split in ("train", "val"):
        for lang in ("src", "tgt"):
            text = (words + "\n") * 40 + (" ".join([words] * 10) + "\n" if long_line else "")
            (folder / f"{split}.{lang}").write_text(text)
    return folder


def test_a_failed_start_writes_nothing_that_a_later_run_reuses(tmp_path):
    run = tmp_path / "run"
    data = _write_data(tmp_path / "data", "a b c", long_line=True)
    cfg = config(data, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=3, valid_every=3,
                 max_tokens=20)
    r = attnmt("train", cfg, "--out", run, check=False)
    assert r.returncode == 2 and "max_tokens 20 is below" in r.stderr
    assert not (run / "config.yaml").exists() and not (run / "checkpoints").exists()
    # the same folder, other data: a new vocabulary, not the stale one
    other = _write_data(tmp_path / "other", "x y z")
    cfg2 = config(other, tmp_path / "c2.yaml", TINY_TRANSFORMER, max_steps=3, valid_every=3)
    r = attnmt("train", cfg2, "--out", run)
    assert "was not made from this run's data" in r.stdout + r.stderr
    symbols = json.loads((run / "vocab/joint.json").read_text())["symbols"]
    assert set(symbols) >= {"x", "y", "z"} and "a" not in symbols


def test_a_validation_sentence_over_max_tokens_is_caught_at_start(task, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for lang in ("src", "tgt"):
        (data / f"train.{lang}").write_text("a b c\n" * 50)
        (data / f"val.{lang}").write_text("a b c\n" + " ".join("b" * 60) + "\n")
    cfg = config(data, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=3, max_tokens=20)
    r = attnmt("train", cfg, "--out", tmp_path / "run", check=False)
    assert r.returncode == 2 and "longest training or validation sentence" in r.stderr
    assert not (tmp_path / "run/checkpoints").exists()


def test_resume_with_a_changed_model_is_refused_and_writes_nothing(uninterrupted, tmp_path):
    import shutil

    cfg, full = uninterrupted
    run = tmp_path / "run"
    shutil.copytree(full, run)
    before = (run / "config.yaml").read_text()
    r = attnmt("train", cfg, "--out", run, "--resume", "--set", "model.dec_hidden=64",
               "--set", "train.max_steps=20", check=False)
    assert r.returncode == 2 and "model.dec_hidden" in r.stderr
    assert "train.max_steps" not in r.stderr          # a budget may change
    assert (run / "config.yaml").read_text() == before


def test_a_moved_run_says_to_pass_data(trained, task, tmp_path):
    import shutil

    import yaml

    run = tmp_path / "moved"
    shutil.copytree(trained, run)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["data"]["dir"] = str(tmp_path / "gone")
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    r = attnmt("evaluate", run, check=False)
    assert r.returncode == 2 and "pass --data DIR" in r.stderr
    assert "BLEU" in attnmt("evaluate", run, "--data", task).stdout


SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\r"]


def test_translate_splits_lines_on_newline_only(trained, tmp_path):
    lines = [f"a{sep}b c" for sep in SEPARATORS]
    text = "\n".join(lines) + "\r\n" + "d e\n"
    out = attnmt("translate", trained, input=text).stdout
    assert out.count("\n") == len(lines) + 1
    f = tmp_path / "in.txt"
    f.write_text(text, encoding="utf-8", newline="")
    assert attnmt("translate", trained, "-i", f).stdout.count("\n") == len(lines) + 1


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                        max_size=40).filter(lambda t: "\n" not in t), min_size=1, max_size=6))
def test_any_text_gives_exactly_one_line_per_input_line(trained_translator, lines):
    """Random strings — separators, control characters, long words — through the
    tokenizer and the translator: one output per input, no crash."""
    from attnmt.cli.use import split_lines

    text = "\n".join(lines) + "\n"
    parsed = split_lines(text)
    assert len(parsed) == len(lines)
    out = trained_translator.translate(parsed, beam=1)
    assert len(out) == len(lines)
    assert all("\n" not in hyps[0].text for hyps in out)
    for line in parsed:
        trained_translator.vocabs.src.encode(line)


@pytest.fixture(scope="module")
def trained_translator(trained):
    from attnmt.inference.translator import Translator

    return Translator.from_run(trained)


def test_lone_surrogates_and_huge_words_do_not_crash_the_tokenizers(trained_translator):
    out = trained_translator.translate(["elf \ud800 zwölf", "x" * 5000, "\x00\x01"], beam=1)
    assert len(out) == 3


def test_data_stats_reports_misaligned_files(tmp_path):
    (tmp_path / "train.de").write_text("a\nb\nc\n")
    (tmp_path / "train.en").write_text("a\nb\n")
    r = attnmt("data", "stats", tmp_path, check=False)
    assert r.returncode == 2 and "train.de has 3" in r.stderr and "train.en has 2" in r.stderr


@pytest.mark.parametrize("args", [
    ["translate", "RUN", "--alpha", "nan"], ["translate", "RUN", "--temperature", "inf"],
    ["translate", "RUN", "--seed", "-1"], ["translate", "RUN", "--max-len-ratio", "1e400"],
    ["translate", "RUN", "--top-p", "nan"], ["generate", "RUN", "--temperature", "-1"],
    ["train", "CFG", "--set", "train.lr=.inf"], ["train", "CFG", "--set", "train.lr=.nan"],
    ["train", "CFG", "--set", "train.betas=[0.9, 1.5]"], ["train", "CFG", "--set",
                                                          "train.seed=-1"],
    ["train", "CFG", "--set", "decode.alpha=-1"], ["train", "CFG", "--set",
                                                   "decode.max_len_ratio=.inf"],
    ["train", "LIST"], ["compare", "LIST"], ["data", "synth", "numbers", "--n", "-5", "--out",
                                              "OUT"],
    ["translate", "RUN", "-o", "MISSING/out.txt"], ["serve", "RUN", "--timeout", "nan"],
])
def test_bad_values_are_one_line_and_exit_2(trained, task, tmp_path, args):
    cfg = config(task, tmp_path / "c.yaml", TINY_TRANSFORMER)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    subst = {"RUN": trained, "CFG": cfg, "LIST": tmp_path / "list.yaml", "OUT": tmp_path / "o",
             "MISSING/out.txt": tmp_path / "missing/out.txt"}
    r = attnmt(*[subst.get(a, a) for a in args], input="a b\n", check=False)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert not (tmp_path / "o" / "train.de").exists()
