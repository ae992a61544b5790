"""Cheap fine-tuning: ``train.freeze`` keeps the named parts as they were, ``train.lora``
trains only adapters and the run decodes with them merged into plain weights."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_TRANSFORMER, config
from safetensors.torch import load_file

pytest.importorskip("peft")


def _finetune(trained, task, tmp_path, **train):
    from attnmt.config import load_config
    from attnmt.training.loop import train as run_training

    path = config(task, tmp_path / "f.yaml", TINY_TRANSFORMER, max_steps=30, valid_every=30,
                  init_from=str(trained), **train)
    run_training(load_config(path), tmp_path / "ft", quiet=True)
    return tmp_path / "ft"


def _best(run):
    from attnmt.rundir import RunDir

    return load_file(str(RunDir(run).checkpoint_file("best")))


def test_frozen_parts_keep_their_weights(trained, task, tmp_path):
    run = _finetune(trained, task, tmp_path, freeze=["embeddings", "encoder"], lr=0.01)
    before, after = _best(trained), _best(run)
    for name in before:         # the output layer is tied to the embeddings: frozen too
        frozen = name.startswith(("encoder.", "src_embed.", "tgt_embed.", "out."))
        assert torch.equal(before[name], after[name]) == frozen, name


def test_lora_trains_adapters_only_and_merges(trained, task, tmp_path):
    from attnmt.inference.translator import Translator
    from attnmt.rundir import RunDir

    run = _finetune(trained, task, tmp_path, lora={"rank": 4, "alpha": 8}, lr=0.01)
    raw = _best(run)
    adapters = [k for k in raw if "lora_" in k]
    assert adapters and all(".base_layer." in k or "lora_" in k or "embed" in k
                            or "norm" in k or k.startswith("out.") for k in raw)
    base = _best(trained)
    for name, value in raw.items():          # every non-adapter weight is the base model's
        if "lora_" not in name:
            assert torch.equal(value, base[name.replace(".base_layer", "")]), name
    cfg, _, merged = RunDir(run).load()
    assert not any("lora" in k or "base_layer" in k for k in merged.state_dict())
    changed = [k for k, v in merged.state_dict().items()
               if k in base and not torch.equal(v, base[k])]
    assert changed and all(k.endswith(".weight") and ("proj" in k or "ffn" in k)
                           for k in changed)
    hyps = Translator.from_run(run).translate(["a b c"], beam=1)
    assert hyps[0][0].text


def test_unknown_freeze_target_is_one_line(trained, task, tmp_path, capsys):
    from test_bad_input import run_cli

    path = config(task, tmp_path / "f.yaml", TINY_TRANSFORMER, max_steps=5,
                  init_from=str(trained), freeze=["encoder", "wings"])
    code, err = run_cli(capsys, "train", path, "--out", tmp_path / "ft")
    assert code == 2 and "train.freeze: 'wings' is not a part of this model" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("lora, message", [
    ({"rank": 0}, "train.lora.rank must be a whole number"),
    ({"targets": ["mlp"]}, "train.lora.targets must be"),
    ({"size": 3}, "train.lora.size is not a key"),
])
def test_bad_lora_settings_are_one_line(lora, message):
    from attnmt.config import load_config
    from attnmt.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(raw={"train": {"lora": lora}})
