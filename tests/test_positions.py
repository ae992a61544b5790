"""Positions inside attention (RoPE, ALiBi): the model contract holds, scores depend on
distance alone, and a model learns with them."""

from __future__ import annotations

import pytest
import torch
from test_models import check_beam_reorder, check_contract, make

from attnmt.models.positions import alibi_bias, alibi_slopes, rotate

SCHEMES = ["rope", "alibi"]
PRESETS = ["transformer-tiny", "decoder-only-small"]


def test_rotary_scores_depend_on_the_distance_alone():
    q, k = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    pos = torch.arange(5)[None]
    near = rotate(q, pos) @ rotate(k, pos).transpose(-2, -1)
    far = rotate(q, pos + 37) @ rotate(k, pos + 37).transpose(-2, -1)
    assert torch.allclose(near, far, atol=1e-4)
    assert not torch.allclose(near, q @ k.transpose(-2, -1), atol=1e-3)   # it does rotate
    assert torch.allclose(rotate(q, pos).norm(dim=-1), q.norm(dim=-1), atol=1e-5)


def test_alibi_slopes_and_bias():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -k for k in range(1, 9)]))
    six = alibi_slopes(6)            # 4 from the power of two below, 2 from the one above
    assert torch.allclose(six[:4], alibi_slopes(4)) and len(six) == 6
    pos = torch.arange(4)[None]
    causal = alibi_bias(alibi_slopes(2), pos, pos, causal=True)
    assert causal.shape == (1, 2, 4, 4)
    assert causal[0, 0, 3, 0] == -0.0625 * 3 and causal[0, 0, 0, 3] == 0     # future: masked
    both = alibi_bias(alibi_slopes(2), pos, pos, causal=False)
    assert torch.equal(both[0, 1], both[0, 1].T)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_contract_with_positions_in_attention(preset, scheme):
    model = make(preset, positions=scheme).eval()
    check_contract(model, preset)
    check_beam_reorder(model)
    if preset == "transformer-tiny":               # no positions added to the embeddings
        assert model.src_embed.table.abs().sum() == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_language_model_cache_equals_the_whole_prefix(scheme):
    from attnmt.config import load_config
    from attnmt.models import build_for_task

    cfg = load_config(raw={"model": {"preset": "transformer-tiny", "d_model": 32, "heads": 4,
                                     "ffn": 64, "positions": scheme}})
    lm = build_for_task("lm", cfg.model, src_vocab=30, tgt_vocab=30).eval()
    tokens = torch.randint(4, 30, (2, 9))
    full = lm(tokens)
    state, steps = lm.init_state(), []
    for t in range(tokens.size(1)):
        logits, state = lm.decode(tokens[:, t:t + 1], state)
        steps.append(logits[:, -1])
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_exports_refuse_positions_they_cannot_express(trained, tmp_path, scheme):
    import yaml

    from attnmt.errors import UserError
    from attnmt.export.ctranslate2 import export_ctranslate2
    from attnmt.export.huggingface import export_huggingface

    run = tmp_path / "run"
    import shutil

    shutil.copytree(trained, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["positions"] = scheme
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    pytest.importorskip("ctranslate2")
    with pytest.raises(UserError, match=f"model.positions {scheme}"):
        export_ctranslate2(run, tmp_path / "ct2")
    with pytest.raises(UserError, match=f"model.positions {scheme}"):
        export_huggingface(run, tmp_path / "hf")
