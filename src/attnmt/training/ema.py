"""An exponential moving average of a model's weights (Polyak averaging).

A short run stops while the learning rate is still large, so its last weights sit at a
noisy point of the loss surface; the average of the recent weights sits nearer the middle
of where they wander. ``train.ema`` keeps that average beside the training weights and
uses it for everything but the next update: validation, the weights a checkpoint saves,
and so every translation. The training weights are saved in the training state, so a
resumed run continues both exactly.

The average is bias-corrected as Adam corrects its moments: after ``t`` updates it is
``Σ dᵗ⁻ⁱ (1 - d) wᵢ / (1 - dᵗ)``, a true weighted mean of the weights seen so far (at
``t = 1`` it is the weights themselves), never pulled towards the initialisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class WeightAverage:
    """The running average of ``model``'s parameters with decay ``decay`` (0 < d < 1)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), not {decay}")
        self.decay = decay
        self.names = [name for name, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the weights after update ``step`` (1-based)."""
        weight = (1.0 - self.decay) / (1.0 - self.decay ** step)
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], weight)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own after it."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def _swap(self) -> None:
        for p, a in zip(self.params, self.average):
            p.data, a.data = a.data, p.data

    def training_weights(self) -> dict[str, torch.Tensor]:
        """The model's own weights by name (to save beside the average)."""
        return {n: p.detach().clone() for n, p in zip(self.names, self.params)}

    @torch.no_grad()
    def restore(self, training_weights: dict[str, torch.Tensor]) -> None:
        """After the model was loaded with the *averaged* weights: take them as the
        average and put ``training_weights`` back into the model."""
        for name, p, a in zip(self.names, self.params, self.average):
            a.copy_(p)
            p.copy_(training_weights[name])
