"""The training objective shared by every task: summed cross-entropy over real tokens."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..symbols import PAD


def token_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Summed (label-smoothed) cross-entropy over non-pad targets. logits (B, T, V)."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=PAD, label_smoothing=label_smoothing, reduction="sum")
