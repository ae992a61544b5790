"""models.backend.Dropout: nn.Dropout's behaviour with a mask drawn 16 bits at a time."""

from __future__ import annotations

import pytest
import torch

from attnmt.models.backend import Dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_it_drops_p_of_the_elements_and_scales_the_rest(p, dtype):
    torch.manual_seed(0)
    x = torch.ones(400, 500, dtype=dtype)                  # 200,000 elements
    out = Dropout(p).train()(x)
    dropped = (out == 0).float().mean().item()
    # binomial standard deviation at 200,000 draws is below 0.0012: 5 of them
    assert dropped == pytest.approx(p, abs=0.006)
    kept = out[out != 0]
    assert torch.allclose(kept.float(), torch.full_like(kept.float(), 1 / (1 - p)), rtol=1e-2)
    assert out.dtype == dtype and out.shape == x.shape


def test_the_mask_is_not_the_same_pattern_over_and_over():
    torch.manual_seed(0)
    drop = Dropout(0.5).train()
    a, b = drop(torch.ones(1000)), drop(torch.ones(1000))
    assert (a == 0).ne(b == 0).float().mean() > 0.4         # independent masks differ on ~half
    rows = drop(torch.ones(64, 37))                          # odd sizes: no shared positions
    assert len({tuple(r.tolist()) for r in (rows == 0)}) == 64


def test_a_seed_gives_the_same_masks_and_gradients_follow_the_mask():
    x = torch.randn(33, 17, requires_grad=True)
    torch.manual_seed(5)
    first = Dropout(0.2).train()(x)
    torch.manual_seed(5)
    second = Dropout(0.2).train()(x)
    assert torch.equal(first, second)
    first.sum().backward()
    assert torch.equal(x.grad == 0, first == 0)
    assert torch.allclose(x.grad[first != 0], torch.tensor(1 / 0.8))


def test_evaluation_and_the_edge_rates_are_nn_dropouts():
    x = torch.randn(8, 8)
    assert torch.equal(Dropout(0.3).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
