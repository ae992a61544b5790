import subprocess
import sys

import pytest

from attnmt.config import load_config
from attnmt.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_misspelled_key_names_key_file_and_suggestion(tmp_path):
    p = write(tmp_path, "model:\n  atention: dot\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == (f"config error: model.atention is not a key; did you mean "
                            f"model.attention? ({p})")


def test_unknown_section_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="modle is not a section; did you mean model"):
        load_config(write(tmp_path, "modle: {}\n"))
    with pytest.raises(ConfigError, match="model.attention must be one of dot, general, concat,"
                                          " additive, got 'dott'"):
        load_config(write(tmp_path, "model: {attention: dott}\n"))
    with pytest.raises(ConfigError, match=r"model.dropout must be in \[0.0, 0.9\], got 1.5"):
        load_config(write(tmp_path, "model: {dropout: 1.5}\n"))
    with pytest.raises(ConfigError, match="train.max_steps must be int, got 'many'"):
        load_config(write(tmp_path, "train: {max_steps: many}\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "train: [\n"))


def test_preset_then_file_then_overrides(tmp_path):
    p = write(tmp_path, "model: {preset: transformer-small, d_model: 128}\n")
    cfg = load_config(p, ["model.heads=8", "train.max_steps=100"])
    assert (cfg.model.arch, cfg.model.enc_layers, cfg.model.d_model) == ("transformer", 3, 128)
    assert cfg.model.heads == 8 and cfg.train.max_steps == 100
    with pytest.raises(ConfigError, match="unknown; valid presets: seq2seq-rnn"):
        load_config(raw={"model": {"preset": "transformer-huge"}})
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_config(raw={}, overrides=["max_steps=3"])
    with pytest.raises(ConfigError, match="--set"):
        load_config(raw={}, overrides=["train.max_step=3"])


def test_resolved_config_round_trips(tmp_path):
    from attnmt.config import config_from_dict

    cfg = load_config(raw={"model": {"preset": "rnn-additive"}, "train": {"lr": 0.001}})
    cfg.save(tmp_path / "r.yaml")
    import yaml

    again = config_from_dict(yaml.safe_load((tmp_path / "r.yaml").read_text()))
    assert again.to_dict()["model"] | {"preset": None} == cfg.to_dict()["model"] | {"preset": None}
    assert again.train.lr == 0.001


def test_cli_reports_config_error_in_one_line_with_exit_2(tmp_path):
    p = write(tmp_path, "train:\n  max_stepz: 3\n")
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "train", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"config error: train.max_stepz is not a key; did you mean train.max_steps? ({p})"]


def test_every_shipped_config_loads():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = load_config(path)
        assert cfg.model.arch in ("seq2seq", "rnn", "transformer")
