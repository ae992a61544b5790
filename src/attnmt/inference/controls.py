"""What a search must respect beyond the model's probabilities: a forced target prefix per
sentence, no repeated n-grams, and GNMT's coverage penalty.

Each control edits the log-probabilities of one decoding step (or, for coverage, the
score of a finished hypothesis) in place, the same way for greedy decoding, sampling and
beam search, so every model family gets them through the model contract alone.

- **Prefix**: while a sentence's forced tokens last, every other token is impossible; the
  forced one keeps its own log-probability, so scores stay those of the whole output.
- **No repeated n-grams** (``no_repeat_ngram``, as in fairseq and transformers): a token
  that would complete an n-gram the hypothesis already holds is impossible.
- **Coverage penalty** (Wu et al. 2016, eq. 14): a finished hypothesis's score gains
  ``beta * sum_i log(min(sum_j p_ij, 1))`` over the source tokens ``i``, where ``p_ij`` is
  the attention output token ``j`` paid to source token ``i``: translations that leave
  source words unattended rank lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

NO_TOKEN = -1


@dataclass
class Controls:
    """The controls of one batch. ``prefixes`` (B, P) holds each sentence's forced target
    ids padded with ``NO_TOKEN``; ``no_repeat_ngram`` 0 is off; ``coverage`` is the
    penalty's beta (0 off)."""

    prefixes: Tensor | None = None
    no_repeat_ngram: int = 0
    coverage: float = 0.0

    @classmethod
    def make(cls, prefixes: Sequence[Sequence[int]] | None = None, no_repeat_ngram: int = 0,
             coverage: float = 0.0, device: torch.device | str = "cpu") -> Controls:
        """Controls from plain per-sentence prefix id lists (None or all empty: none)."""
        forced = None
        if prefixes is not None and any(prefixes):
            forced = torch.full((len(prefixes), max(map(len, prefixes))), NO_TOKEN,
                                dtype=torch.long)
            for i, ids in enumerate(prefixes):
                forced[i, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
            forced = forced.to(device)
        return cls(forced, no_repeat_ngram, coverage)

    @property
    def needs_weights(self) -> bool:
        return self.coverage > 0

    def restricts(self, step: int) -> bool:
        """Whether :meth:`restrict` can change anything at ``step`` (greedy search then
        skips gathering the history it needs)."""
        return self.no_repeat_ngram > 0 or (self.prefixes is not None
                                             and step < self.prefixes.size(1))

    def prefix_lengths(self, batch: int, device: torch.device) -> Tensor:
        """(B,) the number of forced tokens of each sentence."""
        if self.prefixes is None:
            return torch.zeros(batch, dtype=torch.long, device=device)
        return (self.prefixes != NO_TOKEN).sum(1)

    def restrict(self, logprobs: Tensor, history: Tensor, sent: Tensor, step: int) -> None:
        """Apply the step's controls in place. logprobs (R, V) for R rows; history (R, t)
        the tokens each row wrote so far; sent (R,) each row's sentence in the batch."""
        forced = self._forced(sent, step)
        kept = None if forced is None else logprobs.gather(1, forced.clamp(min=0)[:, None])
        if self.no_repeat_ngram > 0:
            ban_repeats(logprobs, history, self.no_repeat_ngram)
        if forced is not None:
            rows = (forced != NO_TOKEN).nonzero()[:, 0]
            if rows.numel():
                logprobs[rows] = float("-inf")
                logprobs[rows, forced[rows]] = kept[rows, 0]

    def _forced(self, sent: Tensor, step: int) -> Tensor | None:
        if self.prefixes is None or step >= self.prefixes.size(1):
            return None
        return self.prefixes[sent, step]


def ban_repeats(logprobs: Tensor, history: Tensor, n: int) -> None:
    """Make impossible (in place) every token that would complete an ``n``-gram already in
    its row's ``history`` (R, t)."""
    if history.size(1) < max(n, 1):
        return
    if n == 1:
        logprobs.scatter_(1, history, float("-inf"))
        return
    grams = history.unfold(1, n, 1)                                      # (R, W, n)
    current = history[:, history.size(1) - (n - 1):]                     # (R, n-1)
    match = (grams[:, :, :-1] == current[:, None, :]).all(-1)            # (R, W)
    rows, where = match.nonzero(as_tuple=True)
    if rows.numel():
        logprobs[rows, grams[rows, where, -1]] = float("-inf")


def coverage_penalty(coverage: Tensor, mask: Tensor, beta: float) -> Tensor:
    """GNMT's coverage penalty of each row: ``beta * sum_i log(min(coverage_i, 1))`` over
    the real source positions (``mask`` True). coverage, mask (R, S) -> (R,)."""
    clipped = coverage.clamp(min=1e-10, max=1.0).log()
    return beta * clipped.masked_fill(~mask, 0.0).sum(-1)
