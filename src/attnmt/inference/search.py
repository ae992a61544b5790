"""Search: greedy, batched beam search and sampling — one implementation for all models.

Everything goes through the model contract (``encode``, ``init_state``,
``decode_step``), so the fixed-context seq2seq, the attention RNNs and the
Transformer (with its key/value cache) are decoded by the same code. Finished
sentences leave the active batch: the decoder is never run for rows whose
output is already complete. Search runs under ``torch.inference_mode`` (less
bookkeeping per operation than ``no_grad``; what it buys is in ``benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from ..config import PENALTIES, STOPPING
from ..models.base import Seq2SeqModel, select_state
from ..symbols import BOS, EOS, PAD
from .constrained import BankedSelection
from .controls import Controls, coverage_penalty


class Cancelled(Exception):
    """Decoding was abandoned between two steps because its caller stopped waiting."""


def _check(cancelled) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled


@dataclass
class Hypothesis:
    tokens: list[int]   # target ids without </s>
    score: float        # log-probability / length penalty (beam), log-probability otherwise
    logprob: float
    complete: bool = True   # False: it reached its length limit with constraints unmet


def _rank(h: Hypothesis) -> tuple[bool, float]:
    """Complete hypotheses first, then by score."""
    return not h.complete, -h.score


def length_penalty(length: int | Tensor, alpha: float, form: str = "gnmt") -> float | Tensor:
    """What a finished hypothesis's log-probability is divided by. ``gnmt``:
    lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016, eq. 14); ``average``: |Y|^alpha (alpha 1:
    the mean log-probability per token, CTranslate2's and fairseq's normalisation)."""
    if form not in PENALTIES:
        raise ValueError(f"length penalty {form!r} is not one of {PENALTIES}")
    return (length ** alpha) if form == "average" else ((5.0 + length) / 6.0) ** alpha


def max_lengths(src_lengths: Tensor, ratio: float, cap: int) -> Tensor:
    """Longest output per sentence, counting </s>: ratio x source length + 10, capped."""
    return (src_lengths.float() * ratio + 10).long().clamp(max=cap)


def _force_eos(logprobs: Tensor, at_max: Tensor) -> None:
    """Rows that reached their length limit may only end (in place). logprobs (..., V)."""
    if at_max.any():
        eos = logprobs[at_max, ..., EOS].clone()
        logprobs[at_max] = float("-inf")
        logprobs[at_max, ..., EOS] = eos


def step_logprobs(logits: Tensor) -> Tensor:
    """A step's log-probabilities with ``<pad>`` and ``<s>`` impossible: neither is ever an
    output (an imported checkpoint's start token, e.g. Marian's ``<pad>``, has a row of
    its own that training never taught to stay low)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    logprobs[..., PAD] = float("-inf")
    logprobs[..., BOS] = float("-inf")
    return logprobs


def _filter_top(logits: Tensor, top_k: int, top_p: float) -> Tensor:
    """Keep the top-k tokens and the smallest set with probability >= top_p (nucleus)."""
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p     # mass before this token already enough
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


def _start(model: Seq2SeqModel, src: Tensor, src_lengths: Tensor,
           zero_heads: Sequence[tuple[int, int]]):
    """The decoder's first state, with ``zero_heads`` silenced (the model contract's
    ``zero_heads``; a model without heads to silence refuses them)."""
    state = model.init_state(model.encode(src, src_lengths))
    return model.zero_heads(state, list(zero_heads)) if zero_heads else state


@torch.inference_mode()
def sequential(model: Seq2SeqModel, src: Tensor, src_lengths: Tensor, max_lens: Tensor,
               temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
               generator: torch.Generator | None = None,
               cancelled: Callable[[], bool] | None = None,
               zero_heads: Sequence[tuple[int, int]] = (),
               controls: Controls | None = None) -> list[Hypothesis]:
    """Greedy decoding (``temperature == 0``) or sampling, one hypothesis per sentence.
    ``cancelled`` is asked before every step; when it says so, :class:`Cancelled` is raised.
    ``zero_heads`` (layer, head) silences those cross-attention heads throughout;
    ``controls`` (:mod:`.controls`): forced prefixes and no repeated n-grams."""
    b = src.size(0)
    controls = controls or Controls()
    state = _start(model, src, src_lengths, zero_heads)
    run = _Greedy.start(b, max_lens, src.device)
    for t in range(run.tokens.size(1)):
        _check(cancelled)
        logits, state, _ = model.decode_step(run.prev, state)
        logprobs = step_logprobs(logits)
        if controls.restricts(t):
            controls.restrict(logprobs, run.tokens[:, :t], run.active, t)
        at_max = t + 1 >= run.max_lens
        if temperature > 0:
            _force_eos(logprobs, at_max)
            filtered = _filter_top(logprobs / temperature, top_k, top_p)
            tok = torch.multinomial(filtered.softmax(-1), 1, generator=generator)[:, 0]
            chosen = logprobs.gather(1, tok[:, None])[:, 0]
        else:                # max(): the value with the index, in less time than argmax()
            chosen, tok = logprobs.max(-1)
            tok.masked_fill_(at_max, EOS)           # at the limit only </s> may follow
            chosen = torch.where(at_max, logprobs[:, EOS], chosen)
        keep = run.write(t, tok, chosen)
        if keep is not None:                     # finished sentences leave the batch
            if keep.numel() == 0:
                break
            state = select_state(state, keep)
    hyps = []
    for row, lp in zip(run.out.tolist(), run.out_logprob.tolist(), strict=True):
        tokens = row[: row.index(EOS)] if EOS in row else [t for t in row if t != PAD]
        hyps.append(Hypothesis(tokens, lp, lp))
    return hyps


@dataclass
class _Greedy:
    """Greedy search's (and sampling's) running sentences, kept as their own rows so that a
    step writes with plain slices: ``active`` (n,) their rows in the batch, ``tokens``
    (n, T) what they wrote, ``logprob`` and ``max_lens`` (n,), ``prev`` (n,) their last
    tokens. A finished sentence is copied into ``out`` / ``out_logprob`` (B, ...) once."""

    active: Tensor
    tokens: Tensor
    logprob: Tensor
    max_lens: Tensor
    prev: Tensor
    out: Tensor
    out_logprob: Tensor

    @classmethod
    def start(cls, b: int, max_lens: Tensor, device: torch.device) -> _Greedy:
        out = torch.full((b, int(max_lens.max())), PAD, dtype=torch.long, device=device)
        return cls(torch.arange(b, device=device), out.clone(),
                   torch.zeros(b, device=device), max_lens,
                   torch.full((b,), BOS, dtype=torch.long, device=device),
                   out, torch.zeros(b, device=device))

    def write(self, t: int, tok: Tensor, logprob: Tensor) -> Tensor | None:
        """Record step ``t``; the rows that keep running when some finished (else None)."""
        self.tokens[:, t] = tok
        self.logprob += logprob
        self.prev = tok
        running = tok != EOS
        last = t + 1 >= self.tokens.size(1)          # at the last step every row is done
        if not last and running.all():
            return None
        if last:
            running = torch.zeros_like(running)
        keep, done = running.nonzero()[:, 0], (~running).nonzero()[:, 0]
        rows = self.active[done]
        self.out[rows] = self.tokens[done]
        self.out_logprob[rows] = self.logprob[done]
        self.active, self.tokens, self.logprob = (self.active[keep], self.tokens[keep],
                                                  self.logprob[keep])
        self.max_lens, self.prev = self.max_lens[keep], tok[keep]
        return keep


class TopK:
    """Plain beam search's choice of the next beam: each sentence's ``k`` best candidates.
    (:class:`.constrained.BankedSelection` is the constrained one; both have these four
    methods.)"""

    def __init__(self, beam: int):
        self.k = beam

    def restrict(self, logprobs: Tensor, at_max: Tensor) -> None:
        pass

    def candidates(self, logprobs: Tensor, scores: Tensor, top: tuple[Tensor, Tensor, Tensor]
                   ) -> tuple[Tensor, Tensor, Tensor]:
        return top

    def complete(self, row: int, beam: int) -> bool:
        return True

    def ended(self, is_eos: Tensor, top_s: Tensor) -> Tensor:
        """Which candidates end a hypothesis worth keeping: those among the ``k`` best."""
        return is_eos[:, : self.k] & torch.isfinite(top_s[:, : self.k])

    def pick(self, masked: Tensor, beams: Tensor, toks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        scores, pick = masked.topk(min(self.k, masked.size(1)), dim=1)
        return scores, beams.gather(1, pick), toks.gather(1, pick)

    def keep(self, keep: Sequence[int]) -> None:
        pass


@torch.inference_mode()
def beam_search(model: Seq2SeqModel, src: Tensor, src_lengths: Tensor, max_lens: Tensor,
                beam: int = 5, alpha: float = 0.6, nbest: int = 1, stopping: str = "current",
                cancelled: Callable[[], bool] | None = None, penalty: str = "gnmt",
                zero_heads: Sequence[tuple[int, int]] = (), controls: Controls | None = None,
                constraints: Sequence[Sequence[Sequence[int]]] | None = None,
                glued: Tensor | None = None) -> list[list[Hypothesis]]:
    """Batched beam search with a length penalty (``penalty``: see :func:`length_penalty`);
    returns ``nbest`` per sentence.

    Each sentence keeps ``beam`` live rows. A hypothesis ending in ``</s>`` among the top
    ``beam`` candidates is set aside (the best ``beam`` are kept). A sentence is done — and
    leaves the batch — at its length limit, or by ``stopping`` (:func:`_stop`).
    ``cancelled`` and ``zero_heads`` as in :func:`sequential`; ``controls``: forced
    prefixes, no repeated n-grams and the coverage penalty (:mod:`.controls`);
    ``constraints``: per sentence, the token sequences its output must contain, as whole
    words when ``glued`` (V,) marks the tokens that continue a word (:mod:`.constrained`).
    """
    if stopping not in STOPPING:
        raise ValueError(f"stopping {stopping!r} is not one of {STOPPING}")
    lp = partial(length_penalty, alpha=alpha, form=penalty)
    lp(1)                                                  # an unknown form fails here
    controls = controls or Controls()
    choose = TopK(beam) if constraints is None else BankedSelection(constraints, beam, glued)
    state = _start(model, src, src_lengths, zero_heads)
    # The first step has one live row per sentence (all beams would start from <s>);
    # after it, every sentence has k rows.
    beams = _Beams.start(src, src_lengths, controls)
    finished: list[list[Hypothesis]] = [[] for _ in range(src.size(0))]
    for t in range(int(max_lens.max())):
        _check(cancelled)
        n, live = beams.sent.numel(), beams.scores.size(1)
        logits, state, weights = model.decode_step(beams.prev, state,
                                                   need_weights=controls.needs_weights)
        logprobs = step_logprobs(logits)
        controls.restrict(logprobs, beams.tokens, beams.sent.repeat_interleave(live), t)
        logprobs = logprobs.view(n, live, -1)
        at_max = t + 1 >= max_lens[beams.sent]
        choose.restrict(logprobs, at_max)
        _force_eos(logprobs, at_max)
        top_s, top_beam, top_tok = choose.candidates(
            logprobs, beams.scores, _candidates(logprobs, beams.scores, 2 * beam))
        is_eos = top_tok == EOS
        bonus = beams.coverage_bonus(weights, controls.coverage)
        _set_aside(finished, choose.ended(is_eos, top_s), beams, top_s, top_beam, beam, lp,
                   bonus, choose.complete)
        scores, next_beam, next_tok = choose.pick(top_s.masked_fill(is_eos, float("-inf")),
                                                  top_beam, top_tok)
        done = at_max | _stop(stopping, finished, beams.sent, scores[:, 0],
                              max_lens[beams.sent], t + 2, beam, nbest, lp)
        keep = (~done).nonzero()[:, 0]
        if keep.numel() == 0:
            break
        choose.keep(keep.tolist())
        rows = (keep[:, None] * live + next_beam[keep]).view(-1)
        state = model.reorder_state(state, rows, _source_rows(keep, n, live, scores.size(1)))
        beams.advance(keep, rows, scores[keep], next_tok[keep])
    return [sorted(h, key=_rank)[:nbest] for h in finished]


@dataclass
class _Beams:
    """The live hypotheses of beam search: each active sentence's rows (``sent`` (n,) their
    sentences in the batch; ``scores`` (n, live); ``tokens`` (n * live, t) what each row
    wrote; ``prev`` (n * live,) its last token) and, for the coverage penalty, the
    attention each row has paid to each source token so far (``coverage``)."""

    sent: Tensor
    scores: Tensor
    tokens: Tensor
    prev: Tensor
    mask: Tensor                      # (B, S) True at real source tokens
    coverage: Tensor | None = None    # (n * live, S)

    @classmethod
    def start(cls, src: Tensor, src_lengths: Tensor, controls: Controls) -> _Beams:
        b, device = src.size(0), src.device
        mask = torch.arange(src.size(1), device=device)[None, :] < src_lengths[:, None]
        return cls(torch.arange(b, device=device), torch.zeros((b, 1), device=device),
                   torch.empty((b, 0), dtype=torch.long, device=device),
                   torch.full((b,), BOS, dtype=torch.long, device=device), mask,
                   torch.zeros(src.shape, device=device) if controls.coverage else None)

    def coverage_bonus(self, weights: Tensor | None, beta: float) -> Tensor | None:
        """Add this step's attention to the coverage; each row's coverage penalty (n, live)
        if it ended now (None without the penalty)."""
        if self.coverage is None or weights is None:
            return None
        self.coverage = self.coverage + weights.float()
        live = self.scores.size(1)
        rows_mask = self.mask[self.sent].repeat_interleave(live, 0)
        return coverage_penalty(self.coverage, rows_mask, beta).view(-1, live)

    def advance(self, keep: Tensor, rows: Tensor, scores: Tensor, tokens: Tensor) -> None:
        """The chosen rows (``rows`` into the current ones) of the sentences ``keep``, with
        their new ``scores`` and last ``tokens`` (each (kept, k))."""
        self.tokens = torch.cat([self.tokens[rows], tokens.reshape(-1, 1)], 1)
        if self.coverage is not None:
            self.coverage = self.coverage[rows]
        self.scores, self.sent, self.prev = scores, self.sent[keep], tokens.reshape(-1)


def _candidates(logprobs: Tensor, scores: Tensor, width: int
                ) -> tuple[Tensor, Tensor, Tensor]:
    """The ``width`` best continuations of each sentence: (scores, beam row, token), each
    (n, width). logprobs (n, live, V); scores (n, live).

    Only a row's own ``width`` best tokens can be among its sentence's ``width`` best, so
    each row is cut to those first and the beam scores are added to them alone, instead
    of to the whole vocabulary of every row (passes over (rows, V) are what cost here)."""
    n, live, vocab = logprobs.shape
    row_top, row_tok = logprobs.topk(min(width, vocab), dim=-1)            # (n, live, w)
    cand = (scores.unsqueeze(-1) + row_top).view(n, -1)                    # (n, live * w)
    top_s, idx = cand.topk(min(width, cand.size(1)), dim=1)
    return top_s, idx // row_top.size(-1), row_tok.view(n, -1).gather(1, idx)


def _set_aside(finished: list[list[Hypothesis]], ended: Tensor, beams: _Beams,
               top_s: Tensor, top_beam: Tensor, k: int,
               lp: Callable[[int | Tensor], float | Tensor], bonus: Tensor | None,
               complete: Callable[[int, int], bool]) -> None:
    """Move the candidates that end in ``</s>`` (``ended`` (n, k)) into ``finished``, keeping
    each sentence's ``k`` best by length-penalised score (plus the coverage ``bonus`` (n,
    live) of the row it ends, when given)."""
    live = beams.scores.size(1)
    for r, c in ended.nonzero().tolist():
        b, j = int(beams.sent[r]), int(top_beam[r, c])
        seq = beams.tokens[r * live + j].tolist()
        logprob = float(top_s[r, c])
        score = logprob / lp(len(seq) + 1) + (float(bonus[r, j]) if bonus is not None else 0)
        finished[b].append(Hypothesis(seq, score, logprob, complete(r, j)))
        finished[b] = sorted(finished[b], key=_rank)[:k]


def _source_rows(keep: Tensor, n: int, live: int, width: int) -> Tensor | None:
    """Rows for what depends only on the source (see ``reorder_state``): None when every
    sentence stays and each already has ``width`` rows."""
    if width != live:                              # the first step: one row becomes k
        return (keep * live).repeat_interleave(width)
    if keep.numel() < n:                           # sentences left the batch
        return (keep[:, None] * live + torch.arange(live, device=keep.device)).view(-1)
    return None


def _stop(stopping: str, finished: list[list[Hypothesis]], sent: Tensor, best_live: Tensor,
          max_lens: Tensor, next_len: int, k: int, nbest: int,
          lp: Callable[[int | Tensor], float | Tensor]) -> Tensor:
    """Which active sentences are done by the ``stopping`` rule:

    - ``current`` (default): its ``nbest``-th finished hypothesis scores at least what
      its best live one would score by ending now (Hugging Face's default rule);
    - ``bound``: ... at least what its best live one could still reach at any length
      (log-probabilities only fall; the penalty grows at most to that of the length
      limit), so stopping never cuts off a better translation the beam holds;
    - ``beam``: it has ``beam`` finished hypotheses (fairseq's rule).

    What each rule costs in speed and BLEU is measured in ``benchmarks/README.md``."""
    counts = [len(finished[b]) for b in sent.tolist()]
    if stopping == "beam":
        return torch.tensor([c >= k for c in counts], device=sent.device)
    nth_best = torch.tensor([finished[b][nbest - 1].score if c >= nbest else float("-inf")
                             for b, c in zip(sent.tolist(), counts)], device=sent.device)
    lengths = max_lens.float() if stopping == "bound" else torch.full_like(best_live, next_len)
    return nth_best >= best_live / lp(lengths)
