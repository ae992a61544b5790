import subprocess
import sys

import pytest

from attnmt.data import multi30k
from attnmt.errors import DataError


def test_fetch_from_local_folder_skips_missing_tests_with_a_note(multi30k_dir, tmp_path):
    notes = []
    splits = multi30k.fetch("de", "en", tmp_path / "out", from_dir=multi30k_dir,
                            log=notes.append)
    assert splits == ["train", "val", "test_2016_flickr"]
    assert (tmp_path / "out/train.de").read_text() == (multi30k_dir / "train.de").read_text()
    assert any("test_2017_flickr is not in" in n for n in notes)


def test_env_var_may_point_at_parent(multi30k_dir, monkeypatch):
    monkeypatch.setenv("ATTNMT_DATA_DIR", str(multi30k_dir.parent))
    assert multi30k.local_dir() == multi30k_dir


def test_missing_train_file_is_an_error(tmp_path):
    (tmp_path / "train.en").write_text("a\n")
    with pytest.raises(DataError, match=r"train.de is missing; Multi30k needs train and val"):
        multi30k.fetch("de", "en", tmp_path / "out", from_dir=tmp_path)
    with pytest.raises(DataError, match="no language 'xx'"):
        multi30k.fetch("xx", "en", tmp_path / "out", from_dir=tmp_path)


def test_cli_data_get_and_stats(multi30k_dir, tmp_path):
    out = tmp_path / "m"
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "get", "multi30k", "--src",
                        "fr", "--tgt", "en", "--from", str(multi30k_dir), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "train, val, test_2016_flickr" in r.stdout
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "stats", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "train.fr: 29000 lines, 0 empty" in r.stdout


def test_cli_data_synth(tmp_path):
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "synth", "numbers", "--src",
                        "de", "--tgt", "digits", "--n", "40", "--n-valid", "5", "--n-test",
                        "5", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "train.digits").read_text().splitlines()) == 40
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "data", "synth", "numbers", "--src",
                        "xx", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("data error: numbers: language 'xx'")
