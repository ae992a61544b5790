"""Bad input on every path: misaligned corpora, numbers a config cannot take, files that are
not UTF-8 — one line, exit 2, and nothing written."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TINY_TRANSFORMER, config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnmt.cli import main
from attnmt.config import _SECTION_CLASSES, HUGE, load_config
from attnmt.data import prepare as prep
from attnmt.data.corpus import count_lines, read_lines
from attnmt.data.prepare import SplitSpec, prepare_split
from attnmt.data.synthetic import write_task
from attnmt.data.tokenizers import Vocabs
from attnmt.errors import ConfigError, DataError


def run_cli(capsys, *args) -> tuple[int, str]:
    """``attnmt ARGS`` in this process: (exit status, stderr)."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code, capsys.readouterr().err


def assert_one_line(err: str, *parts: str) -> None:
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    for part in parts:
        assert part in err, (part, err)


# ---- misaligned corpora ------------------------------------------------------------------------
@pytest.fixture
def corpus(tmp_path, monkeypatch) -> Path:
    """A small reverse task and an empty cache of prepared data for this test alone."""
    folder = tmp_path / "data"
    write_task(folder, "reverse", n=200, n_valid=20, n_test=20, min_items=2, max_items=5,
               seed=3)
    monkeypatch.setenv("ATTNMT_CACHE", str(tmp_path / "cache"))
    return folder


def misalign(folder: Path, split: str, how: str) -> tuple[str, str]:
    """Break one split's alignment; the two counts the error must name."""
    src, tgt = folder / f"{split}.src", folder / f"{split}.tgt"
    lines = src.read_text().splitlines(keepends=True)
    n = len(lines)
    if how == "source one longer at the end":           # the case a user reported
        src.write_text("".join(lines) + "a b c\n")
        return f"{src} has {n + 1} lines", f"{tgt} has {n}"
    if how == "target one longer at the end":
        tgt.write_text(tgt.read_text() + "c b a\n")
        return f"{src} has {n} lines", f"{tgt} has {n + 1}"
    del lines[n // 2]                                     # a line missing in the middle
    src.write_text("".join(lines))
    return f"{src} has {n - 1} lines", f"{tgt} has {n}"


HOWS = ["source one longer at the end", "target one longer at the end", "a line missing"]


def nothing_written(run: Path, cache: Path) -> bool:
    prepared = cache / "prepared"
    return not run.exists() and (not prepared.exists() or not list(prepared.iterdir()))


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("how", HOWS)
def test_train_refuses_a_misaligned_split_and_writes_nothing(corpus, tmp_path, capsys, split,
                                                              how):
    counts = misalign(corpus, split, how)
    cfg = config(corpus, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=2)
    code, err = run_cli(capsys, "train", cfg, "--out", tmp_path / "run", "--quiet")
    assert code == 2
    assert_one_line(err, *counts, "aligned files must have the same number of lines")
    assert nothing_written(tmp_path / "run", tmp_path / "cache")


def test_data_prepare_refuses_a_misaligned_split(corpus, tmp_path, capsys):
    counts = misalign(corpus, "train", HOWS[0])
    cfg = config(corpus, tmp_path / "c.yaml", TINY_TRANSFORMER)
    code, err = run_cli(capsys, "data", "prepare", cfg, "--out", tmp_path / "run")
    assert code == 2 and nothing_written(tmp_path / "run", tmp_path / "cache")
    assert_one_line(err, *counts)


def test_evaluate_with_data_refuses_a_misaligned_test_split(trained, corpus, capsys):
    other = corpus.parent / "other"
    write_task(other, "reverse", n=20, n_valid=5, n_test=10, min_items=2, max_items=5, seed=4)
    counts = misalign(other, "test", HOWS[0])
    code, err = run_cli(capsys, "evaluate", trained, "--data", other, "--split", "test")
    assert code == 2
    assert_one_line(err, *counts)


def test_a_study_refuses_a_misaligned_split_before_writing(corpus, tmp_path, capsys):
    counts = misalign(corpus, "val", HOWS[0])
    study = {"name": "s", "config": {"data": {"dir": str(corpus), "src": "src", "tgt": "tgt",
                                              "tokenizer": "word"}},
             "budget": {"steps": 2}, "runs": [{"name": "t", "preset": "transformer-tiny"}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    code, err = run_cli(capsys, "compare", tmp_path / "s.yaml", "--out", tmp_path / "report")
    assert code == 2 and not (tmp_path / "report").exists()
    assert_one_line(err, *counts)


def test_torchrun_ranks_refuse_a_misaligned_split(corpus, tmp_path):
    counts = misalign(corpus, "train", HOWS[0])
    cfg = config(corpus, tmp_path / "c.yaml", TINY_TRANSFORMER, max_steps=2)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node", "2", "-m", "attnmt.cli", "train", str(cfg), "--out",
                        str(tmp_path / "run")], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("data error:")]
    assert errors and all(c in errors[0] for c in counts), r.stderr[-2000:]
    assert nothing_written(tmp_path / "run", tmp_path / "cache")


@pytest.mark.parametrize("longer", [0, 1])
@pytest.mark.parametrize("extra_at", ["end", "chunk boundary"])
def test_the_streaming_reader_itself_catches_either_file_ending_first(tmp_path, monkeypatch,
                                                                       longer, extra_at):
    """Below the up-front count: preparing a split checks while it streams, whichever file
    is longer, at the end of a chunk or after it."""
    monkeypatch.setattr(prep, "CHUNK_LINES", 5)
    n = 10 if extra_at == "chunk boundary" else 12
    files = [tmp_path / "p.x", tmp_path / "p.y"]
    for i, f in enumerate(files):
        f.write_text("a b\n" * (n + (i == longer)))
    Vocabs.train("word", ["a b"], ["a b"], 0, joint=True).save(tmp_path / "vocab")
    spec = SplitSpec("pairs", tuple(map(str, files)), "p", "translate", 30)
    want = [n + (i == longer) for i in range(2)]
    with pytest.raises(DataError, match=rf"p.x has {want[0]} lines but .*p.y has {want[1]}"):
        prepare_split(spec, tmp_path / "vocab", tmp_path / "cache", workers=1,
                      log=lambda *_: None)
    assert not list((tmp_path / "cache").iterdir())


@given(st.lists(st.text(alphabet="ab \r\t", max_size=4), max_size=8), st.booleans())
def test_count_lines_agrees_with_read_lines(tmp_path_factory, lines, final_newline):
    path = tmp_path_factory.mktemp("count") / "f.txt"
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    path.write_bytes(text.encode())
    assert count_lines(path) == len(read_lines(path))


# ---- numbers a config cannot take --------------------------------------------------------------
def numeric_fields() -> list[tuple[str, type, float | None, float | None]]:
    """(section.key, int or float, min, max) of every numeric key of the config."""
    out = []
    for section, cls in _SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                out.append((f"{section}.{f.name}", type(default), f.metadata["min"],
                            f.metadata["max"]))
    return out


NUMERIC = numeric_fields()


def yaml_float(x: float) -> str:
    """A float as YAML reads it back as a float (YAML 1.1 needs the dot: ``1.0e+300``)."""
    text = repr(x)
    return text if "." in text else text.replace("e", ".0e", 1)


def bad_values(kind: type, lo: float | None, hi: float | None) -> st.SearchStrategy:
    """Values the key must refuse: non-finite, above its bound (huge), below its bound
    (negative), and non-integral floats for an integer key."""
    above = (st.floats(min_value=float(hi), exclude_min=True, allow_infinity=False)
             .map(yaml_float) if kind is float else st.integers(min_value=int(hi) + 1).map(str))
    options = [st.sampled_from([".inf", "-.inf", ".nan"]), above]
    if lo is not None:
        options.append(st.floats(max_value=float(lo), exclude_max=True,
                                 allow_infinity=False).map(yaml_float) if kind is float
                       else st.integers(max_value=int(lo) - 1).map(str))
    if kind is int:
        options.append(st.floats(allow_nan=False, allow_infinity=False)
                       .filter(lambda x: not x.is_integer()).map(yaml_float))
    return st.one_of(options)


@st.composite
def bad_override(draw) -> str:
    key, kind, lo, hi = draw(st.sampled_from(NUMERIC))
    return f"{key}={draw(bad_values(kind, lo, hi))}"


def test_every_numeric_key_has_bounds():
    assert NUMERIC and all(hi is not None and hi <= HUGE for _, _, _, hi in NUMERIC)


@settings(max_examples=300, deadline=None)
@given(bad_override())
def test_a_bad_number_for_any_key_is_a_config_error(override):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=[override])
    message = str(e.value)
    assert message.count("\n") == 0 and override.split("=")[0] in message


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad_override())
def test_a_bad_number_on_the_command_line_is_one_line_and_exit_2(task, tmp_path, capsys,
                                                                  override):
    cfg = config(task, tmp_path / "c.yaml", TINY_TRANSFORMER)
    code, err = run_cli(capsys, "train", cfg, "--set", override, "--out", tmp_path / "r")
    assert code == 2 and not (tmp_path / "r").exists()
    assert_one_line(err, "config error: " + override.split("=")[0])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NUMERIC), st.data())
def test_a_good_number_for_any_key_comes_back_typed(field, data):
    key, kind, lo, hi = field
    lo = -1e6 if lo is None else lo
    if kind is int:
        value = data.draw(st.integers(min_value=math.ceil(lo), max_value=int(hi)))
    else:
        value = data.draw(st.floats(min_value=float(lo), max_value=float(hi)))
    section, name = key.split(".")
    cfg = load_config(raw={section: {name: value}})
    got = getattr(getattr(cfg, section), name)
    assert type(got) is kind and got == value


def test_a_float_with_a_whole_value_is_taken_for_an_integer_key():
    assert load_config(overrides=["train.max_steps=300.0"]).train.max_steps == 300


# ---- files that are not UTF-8 ------------------------------------------------------------------
def test_a_latin1_config_names_the_file_line_and_byte(task, tmp_path, capsys):
    good = config(task, tmp_path / "good.yaml", TINY_TRANSFORMER).read_text()
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(good.encode() + "# für die Übung\n".encode("latin-1"))
    offset = len(good.encode()) + len("# f")
    line = good.count("\n") + 1
    code, err = run_cli(capsys, "train", bad, "--out", tmp_path / "r")
    assert code == 2 and not (tmp_path / "r").exists()
    assert_one_line(err, f"{bad} line {line} is not valid UTF-8 (byte offset {offset})")


def test_a_latin1_study_file_names_the_file_line_and_byte(tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_bytes("name: s\n# Übung\n".encode("latin-1"))
    code, err = run_cli(capsys, "compare", study, "--out", tmp_path / "report")
    assert code == 2 and not (tmp_path / "report").exists()
    assert_one_line(err, f"{study} line 2 is not valid UTF-8 (byte offset 10)")


def test_latin1_input_to_translate_names_the_line(trained, tmp_path, capsys):
    f = tmp_path / "in.txt"
    f.write_bytes("a b\nc \xe4 d\n".encode("latin-1"))
    code, err = run_cli(capsys, "translate", trained, "-i", f)
    assert code == 2
    assert_one_line(err, f"{f} line 2 is not valid UTF-8 (byte offset 6)")
