"""Lexically constrained beam search: phrases that must appear in the output (terminology),
by dynamic beam allocation (Post & Vilar 2018, the algorithm Sockeye and fairseq use).

Each hypothesis tracks which of its sentence's phrases it has written and how far it is
into the one it is writing. At every step the candidates are the usual best
continuations of the whole beam, plus, for every live hypothesis, the tokens that would
advance a constraint (the next token of the phrase in progress, else the first token of
each phrase not yet written) and its own best token. The beam's ``k`` places are then
shared out among *banks* — the candidates grouped by how many constraint tokens they
have met (0 to all of them) — so hypotheses that have met more constraints are not
crowded out by likelier ones that have met fewer; within a bank the likeliest win. A
hypothesis may only end once every phrase is in it (or at its length limit). A phrase
begun and then broken off counts for nothing and may be started again. Phrases are whole
words: the token after a completed phrase may not glue letters onto its last word (with
SentencePiece, a piece without ``▁``), so "igloo" is not met by "igloos".

With no constraints there is one bank and the search is plain beam search.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..symbols import EOS, PAD

# (bitmask of the phrases written, the phrase in progress or -1, its tokens written so far)
State = tuple[int, int, int]
START: State = (0, -1, 0)


class Phrases:
    """One sentence's constraints (token id sequences) and the bookkeeping of a hypothesis
    against them."""

    def __init__(self, phrases: Sequence[Sequence[int]]):
        self.phrases = [tuple(p) for p in phrases if p]
        self.total = sum(map(len, self.phrases))
        self.all_met = (1 << len(self.phrases)) - 1

    def advance(self, state: State, token: int) -> State:
        """The state after writing ``token``."""
        met, current, pos = state
        if current >= 0 and self.phrases[current][pos] == token:
            if pos + 1 == len(self.phrases[current]):
                return met | (1 << current), -1, 0
            return met, current, pos + 1
        for i, phrase in enumerate(self.phrases):       # a fresh start (or a restart)
            if not met >> i & 1 and phrase[0] == token:
                return (met | (1 << i), -1, 0) if len(phrase) == 1 else (met, i, 1)
        return met, -1, 0

    def wanted(self, state: State) -> set[int]:
        """Tokens that would advance a constraint from ``state``."""
        met, current, pos = state
        if current >= 0:
            return {self.phrases[current][pos]}
        if met == self.all_met:
            return {EOS} if self.phrases else set()
        return {p[0] for i, p in enumerate(self.phrases) if not met >> i & 1}

    def met_tokens(self, state: State) -> int:
        met, _, pos = state
        return pos + sum(len(p) for i, p in enumerate(self.phrases) if met >> i & 1)

    def done(self, state: State) -> bool:
        return state[0] == self.all_met


def bank_sizes(k: int, counts: Sequence[int]) -> list[int]:
    """How many of the beam's ``k`` places each bank gets: ``k // banks`` each, the rest to
    the bank that has met the most; from the top down, places a bank has no candidates for
    pass to the bank below (Post & Vilar 2018, section 3)."""
    banks = len(counts)
    sizes = [k // banks] * banks
    sizes[-1] += k - sum(sizes)
    for i in reversed(range(banks)):
        spare = sizes[i] - counts[i]
        if spare > 0:
            sizes[i] -= spare
            if i > 0:
                sizes[i - 1] += spare
    return sizes


class BankedSelection:
    """Beam search's choice of the next beam under constraints (see the module docstring);
    :func:`search.beam_search` calls ``restrict``, ``candidates``, ``pick`` and ``keep``
    at every step."""

    def __init__(self, constraints: Sequence[Sequence[Sequence[int]]], beam: int,
                 glued: Tensor | None = None):
        """``glued`` (V,) bool: the tokens that would continue a word (none if not given)."""
        self.k = beam
        self.glued = glued
        self.phrases = [Phrases(c) for c in constraints]
        self.sent = list(range(len(constraints)))            # active sentences
        self.states: list[list[State]] = [[START] for _ in constraints]
        self.just_met: list[list[bool]] = [[False] for _ in constraints]
        self.next_states: list[list[State]] = []
        self.next_met: list[list[bool]] = []

    def restrict(self, logprobs: Tensor, at_max: Tensor) -> None:
        """No hypothesis may end before its constraints are met, unless at its limit, nor
        glue a word piece onto a phrase it has just completed. logprobs (n, live, V) in
        place."""
        unmet = torch.tensor([[not self.phrases[b].done(s) for s in rows]
                              for b, rows in zip(self.sent, self.states, strict=True)],
                             device=logprobs.device)
        banned = unmet & ~at_max[:, None]
        logprobs[..., EOS] = logprobs[..., EOS].masked_fill(banned, float("-inf"))
        if self.glued is not None and any(map(any, self.just_met)):
            rows = torch.tensor(self.just_met, device=logprobs.device)
            logprobs.masked_fill_(rows[..., None] & self.glued, float("-inf"))

    def complete(self, row: int, beam: int) -> bool:
        """Whether live hypothesis ``beam`` of active sentence ``row`` has met its
        constraints (one that ends without them, at its limit, ranks after those that did)."""
        return self.phrases[self.sent[row]].done(self.states[row][beam])

    def ended(self, is_eos: Tensor, top_s: Tensor) -> Tensor:
        """Which candidates end a hypothesis worth keeping: under constraints every one that
        may end (it has met them all), since the likelier unfinished ones have not; else,
        as in plain beam search, those among the ``k`` best."""
        ended = is_eos & torch.isfinite(top_s)
        plain = torch.tensor([self.phrases[b].total == 0 for b in self.sent],
                             device=top_s.device)
        ended[plain, self.k:] = False
        return ended

    def candidates(self, logprobs: Tensor, scores: Tensor, top: tuple[Tensor, Tensor, Tensor]
                   ) -> tuple[Tensor, Tensor, Tensor]:
        """The usual ``top`` candidates (scores, beam row, token; each (n, w)) with each live
        row's constraint tokens and best token added, sorted by score: each (n, w')."""
        top_s, top_beam, top_tok = top
        best = logprobs.argmax(-1).tolist()                                  # (n, live)
        rows, beams, toks = [], [], []
        seen = [set(zip(b, t)) for b, t in zip(top_beam.tolist(), top_tok.tolist())]
        finite = torch.isfinite(scores).tolist()
        for r, (b, states) in enumerate(zip(self.sent, self.states, strict=True)):
            for j, state in enumerate(states):
                if not finite[r][j]:
                    continue
                for tok in self.phrases[b].wanted(state) | {best[r][j]}:
                    if (j, tok) not in seen[r]:
                        seen[r].add((j, tok))
                        rows.append(r), beams.append(j), toks.append(tok)
        if not rows:
            return top_s, top_beam, top_tok
        return _merge(logprobs, scores, top, rows, beams, toks)

    def pick(self, masked: Tensor, beams: Tensor, toks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The next beam from sorted candidates (``masked``: their scores with the ended
        ones at -inf): ``k`` per sentence by bank, then by score. Remembers the states of
        the chosen hypotheses for :meth:`keep`."""
        chosen, self.next_states, self.next_met = [], [], []
        flat_s, flat_b, flat_t = masked.tolist(), beams.tolist(), toks.tolist()
        for r, b in enumerate(self.sent):
            phrases, states = self.phrases[b], self.states[r]
            new = [phrases.advance(states[j], t) for j, t in zip(flat_b[r], flat_t[r])]
            picks = self._by_bank(flat_s[r], [phrases.met_tokens(s) for s in new],
                                  phrases.total + 1)
            chosen.append(picks)
            self.next_states.append([new[i] for i in picks])
            self.next_met.append([new[i][0] != states[flat_b[r][i]][0] for i in picks])
        index = torch.tensor(chosen, device=masked.device)
        return masked.gather(1, index), beams.gather(1, index), toks.gather(1, index)

    def _by_bank(self, scores: list[float], banks: list[int], n_banks: int) -> list[int]:
        """Positions of the ``k`` candidates chosen (in score order) from one sentence's
        sorted candidates: each bank's share of its best, then the best of the rest."""
        live = [i for i, s in enumerate(scores) if s != float("-inf")]
        counts = [0] * n_banks
        for i in live:
            counts[banks[i]] += 1
        sizes = bank_sizes(self.k, counts)
        picks = []
        for i in live:
            if sizes[banks[i]] > 0:
                sizes[banks[i]] -= 1
                picks.append(i)
        taken = set(picks)
        rest = [i for i in range(len(scores)) if i not in taken]
        return sorted(picks + rest[: self.k - len(picks)])

    def keep(self, keep: Sequence[int]) -> None:
        """The sentences ``keep`` (positions among the active ones) stay in the batch."""
        self.sent = [self.sent[r] for r in keep]
        self.states = [self.next_states[r] for r in keep]
        self.just_met = [self.next_met[r] for r in keep]


def _merge(logprobs: Tensor, scores: Tensor, top: tuple[Tensor, Tensor, Tensor],
           rows: list[int], beams: list[int], toks: list[int]) -> tuple[Tensor, Tensor, Tensor]:
    """``top`` with the extra candidates (row r, beam j, token) appended per sentence, padded
    with impossible ones, and each sentence's candidates sorted by score (stable)."""
    top_s, top_beam, top_tok = top
    n, device = top_s.size(0), top_s.device
    r, j, t = (torch.tensor(x, device=device) for x in (rows, beams, toks))
    extra_s = scores[r, j] + logprobs[r, j, t]
    counts = torch.bincount(r, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(rows), device=device) - starts[r]
    width = int(counts.max())
    pad_s = torch.full((n, width), float("-inf"), device=device)
    pad_b = torch.zeros((n, width), dtype=torch.long, device=device)
    pad_t = torch.full((n, width), PAD, dtype=torch.long, device=device)
    pad_s[r, slot], pad_b[r, slot], pad_t[r, slot] = extra_s, j, t
    all_s = torch.cat([top_s, pad_s], 1)
    order = all_s.sort(dim=1, descending=True, stable=True).indices
    return (all_s.gather(1, order), torch.cat([top_beam, pad_b], 1).gather(1, order),
            torch.cat([top_tok, pad_t], 1).gather(1, order))
