"""Token-budget batching over sentences tokenised once into compact arrays.

A corpus is encoded a single time into two flat ``int32`` arrays with offsets
(no re-tokenisation per epoch). Each epoch, sentences are sorted by length with
a seeded random tie-break, cut greedily into batches whose padded size
(sentences x longest side) stays within ``max_tokens``, and the batch order is
shuffled — tight buckets mean little padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..symbols import BOS, EOS, PAD


@dataclass
class Batch:
    """Padded tensors of one batch."""

    src: torch.Tensor          # (B, S) source ids ending in </s>
    src_lengths: torch.Tensor  # (B,)
    tgt_in: torch.Tensor       # (B, T) <s> y1 .. yn
    tgt_out: torch.Tensor      # (B, T) y1 .. yn </s>

    @property
    def n_tgt_tokens(self) -> int:
        return int((self.tgt_out != PAD).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.src.to(device), self.src_lengths.to(device), self.tgt_in.to(device),
                     self.tgt_out.to(device))


def _pack(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


class EncodedSet:
    """Sentence pairs as flat token arrays; source gets ``</s>`` appended.

    Built from lists (small data, tests) or from prepared arrays that may be memory-mapped
    (:meth:`from_arrays`); lengths are kept as ``int32``."""

    def __init__(self, src: list[list[int]], tgt: list[list[int]]):
        src_flat, src_off = _pack(src)
        tgt_flat, tgt_off = _pack(tgt)
        self._set(src_flat, src_off, tgt_flat, tgt_off)

    @classmethod
    def from_arrays(cls, src_flat: np.ndarray, src_off: np.ndarray, tgt_flat: np.ndarray,
                    tgt_off: np.ndarray) -> EncodedSet:
        data = cls.__new__(cls)
        data._set(src_flat, src_off, tgt_flat, tgt_off)
        return data

    def _set(self, src_flat, src_off, tgt_flat, tgt_off) -> None:
        self.src_flat, self.src_off, self.tgt_flat, self.tgt_off = (src_flat, src_off,
                                                                    tgt_flat, tgt_off)
        self.src_lens = (np.diff(src_off) + 1).astype(np.int32)  # + </s>
        self.tgt_lens = (np.diff(tgt_off) + 1).astype(np.int32)  # + <s> (in) or </s> (out)

    def __len__(self) -> int:
        return len(self.src_lens)

    def src_ids(self, i: int) -> np.ndarray:
        return self.src_flat[self.src_off[i]: self.src_off[i + 1]]

    def tgt_ids(self, i: int) -> np.ndarray:
        return self.tgt_flat[self.tgt_off[i]: self.tgt_off[i + 1]]

    def epoch_ids(self, seed: int, epoch: int) -> np.ndarray | None:
        """The sentences an epoch visits, when not simply each once (:class:`WeightedSet`)."""
        return None

    def lengths(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source and target lengths (with ``</s>``, ``<s>``) of the examples ``ids``."""
        return self.src_lens[ids], self.tgt_lens[ids]

    def batch(self, ids: np.ndarray) -> Batch:
        n = len(ids)
        s_len, t_len = self.src_lens[ids], self.tgt_lens[ids]
        src = np.full((n, s_len.max()), PAD, dtype=np.int64)
        tin = np.full((n, t_len.max()), PAD, dtype=np.int64)
        tout = np.full((n, t_len.max()), PAD, dtype=np.int64)
        for row, i in enumerate(ids):
            s, t = self.src_ids(i), self.tgt_ids(i)
            src[row, : len(s)] = s
            src[row, len(s)] = EOS
            tin[row, 0] = BOS
            tin[row, 1: len(t) + 1] = t
            tout[row, : len(t)] = t
            tout[row, len(t)] = EOS
        return Batch(torch.from_numpy(src), torch.from_numpy(s_len.astype(np.int64)),
                     torch.from_numpy(tin), torch.from_numpy(tout))


class WeightedSet(EncodedSet):
    """Several training corpora as one set (``data.corpora``): an epoch holds each corpus's
    pairs ``weight`` times on average — whole copies for the integer part, a seeded random
    subset for the rest — so weight 2 doubles a corpus, 0.5 takes half of it per epoch.
    The parts stay memory-mapped; only their lengths are held."""

    def __init__(self, parts: list[EncodedSet], weights: list[float]):
        self.parts, self.weights = parts, [float(w) for w in weights]
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.src_lens = np.concatenate([p.src_lens for p in parts])
        self.tgt_lens = np.concatenate([p.tgt_lens for p in parts])

    def _where(self, i: int) -> tuple[EncodedSet, int]:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[k], int(i - self.starts[k])

    def src_ids(self, i: int) -> np.ndarray:
        part, j = self._where(i)
        return part.src_ids(j)

    def tgt_ids(self, i: int) -> np.ndarray:
        part, j = self._where(i)
        return part.tgt_ids(j)

    def epoch_ids(self, seed: int, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([seed, epoch, 1])
        out = []
        for part, weight, start in zip(self.parts, self.weights, self.starts):
            n, whole = len(part), int(weight)
            extra = min(n, int(round((weight - whole) * n)))
            drawn = np.sort(rng.choice(n, extra, replace=False))
            out.append(np.concatenate([np.tile(np.arange(n), whole), drawn]) + start)
        return np.concatenate(out)

    def counts(self, seed: int, epoch: int) -> list[int]:
        """How many pairs of each corpus an epoch draws."""
        ids = self.epoch_ids(seed, epoch)
        return np.bincount(np.searchsorted(self.starts, ids, side="right") - 1,
                           minlength=len(self.parts)).tolist()


class SampledSegmentation:
    """A training set whose sentences are segmented anew in every batch by SentencePiece
    sampling (Kudo 2018, ``data.spm_alpha``), the rest of the set unchanged. The sampling
    is seeded by the batch's sentences and ``seed``, so a resumed run draws the same
    segmentations; a sampled segmentation at or over ``max_len`` tokens keeps the best one."""

    def __init__(self, data: EncodedSet, src_tok, tgt_tok, alpha: float, seed: int,
                 max_len: int):
        self.data, self.src_tok, self.tgt_tok = data, src_tok, tgt_tok
        self.alpha, self.seed, self.max_len = alpha, seed, max_len

    def __len__(self) -> int:
        return len(self.data)

    def __getattr__(self, name: str):
        return getattr(self.data, name)

    def _sampled(self, tok, ids: np.ndarray) -> list[int]:
        new = tok.encode_sampled(tok.decode(ids.tolist()), self.alpha)
        return new if 0 < len(new) < self.max_len else ids.tolist()

    def batch(self, ids: np.ndarray) -> Batch:
        import zlib

        import sentencepiece

        sentencepiece.set_random_generator_seed(
            zlib.crc32(np.asarray(ids, dtype=np.int64).tobytes()) ^ self.seed)
        src = [self._sampled(self.src_tok, self.data.src_ids(i)) for i in ids]
        tgt = [self._sampled(self.tgt_tok, self.data.tgt_ids(i)) for i in ids]
        return EncodedSet(src, tgt).batch(np.arange(len(ids)))


class JoinedSet:
    """Long training inputs made of real sentences (``data.join``): each epoch, a seeded
    ``fraction`` of the pairs is cut into groups of 2 to ``max_k`` random pairs, and each
    group becomes one example whose source is its sources one after another (with the
    tokenizers' word ``separators`` between them) and whose target is its targets in the same
    order. The other pairs stay single, so every pair is still seen once per epoch. A group
    longer than ``limit`` tokens on either side stays apart as single pairs.

    A joined example's id is ``n * (epoch + 1) + group``, past the ``n`` pairs' own ids,
    so a batch names its epoch's groups and a resumed run rebuilds the same ones."""

    def __init__(self, data: EncodedSet, *, fraction: float, max_k: int, limit: int,
                 seed: int, separators: tuple[list[int], list[int]] = ([], [])):
        self.data, self.fraction, self.max_k, self.limit = data, fraction, max_k, limit
        self.seed, self.separators = seed, separators
        self._epochs: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.data)

    def __getattr__(self, name: str):
        return getattr(self.data, name)

    def _plan(self, epoch: int) -> dict:
        """The epoch's single pairs and groups (members and offsets, joined lengths)."""
        if epoch in self._epochs:
            return self._epochs[epoch]
        rng = np.random.default_rng([self.seed, epoch, 2])
        base = self.data.epoch_ids(self.seed, epoch)
        base = np.arange(len(self.data)) if base is None else base
        order = base[rng.permutation(len(base))]
        wanted = int(round(self.fraction * len(base)))
        ends = np.cumsum(rng.integers(2, self.max_k + 1, size=wanted // 2 + 1))
        ends = ends[ends <= wanted]
        if wanted - (ends[-1] if len(ends) else 0) >= 2:        # the rest: one smaller group
            ends = np.append(ends, wanted)
        offsets = np.concatenate([[0], ends]).astype(np.int64)
        chosen, sizes = order[: offsets[-1]], np.diff(offsets)  # (one pair left stays single)
        src, tgt = self.data.lengths(chosen)
        joined = [np.add.reduceat(lens, offsets[:-1]) + (sizes - 1) * (len(sep) - 1)
                  if len(sizes) else np.zeros(0, dtype=np.int64)
                  for lens, sep in ((src, self.separators[0]), (tgt, self.separators[1]))]
        fits = (joined[0] <= self.limit) & (joined[1] <= self.limit)
        inside = np.repeat(fits, sizes)
        plan = {"singles": np.concatenate([order[len(chosen):], chosen[~inside]]),
                "members": chosen[inside],
                "offsets": np.concatenate([[0], np.cumsum(sizes[fits])]).astype(np.int64),
                "src": joined[0][fits], "tgt": joined[1][fits]}
        self._epochs = {e: v for e, v in self._epochs.items() if e >= epoch - 1}
        self._epochs[epoch] = plan
        return plan

    def epoch_ids(self, seed: int, epoch: int) -> np.ndarray:
        plan, n = self._plan(epoch), len(self.data)
        return np.concatenate([plan["singles"], n * (epoch + 1) + np.arange(len(plan["src"]))])

    def _group(self, i: int) -> tuple[dict, int]:
        n = len(self.data)
        return self._plan(int(i) // n - 1), int(i) % n

    def lengths(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, ids = len(self.data), np.asarray(ids)
        src, tgt = (lens.astype(np.int64) for lens in self.data.lengths(np.minimum(ids, n - 1)))
        epochs = ids // n - 1                       # -1 for a single pair
        for epoch in np.unique(epochs[epochs >= 0]):
            rows = np.flatnonzero(epochs == epoch)
            plan, groups = self._plan(int(epoch)), ids[rows] % n
            src[rows], tgt[rows] = plan["src"][groups], plan["tgt"][groups]
        return src, tgt

    def _joined(self, members: np.ndarray, side: int) -> np.ndarray:
        sep, get = self.separators[side], (self.data.src_ids, self.data.tgt_ids)[side]
        parts: list = []
        for k, i in enumerate(members):
            parts += ([sep] if k and sep else []) + [get(int(i))]
        return np.concatenate(parts)

    def batch(self, ids: np.ndarray) -> Batch:
        src, tgt = [], []
        for i in ids:
            if i < len(self.data):
                src.append(self.data.src_ids(int(i)))
                tgt.append(self.data.tgt_ids(int(i)))
            else:
                plan, g = self._group(i)
                members = plan["members"][plan["offsets"][g]: plan["offsets"][g + 1]]
                src.append(self._joined(members, 0))
                tgt.append(self._joined(members, 1))
        return EncodedSet(src, tgt).batch(np.arange(len(ids)))


def token_batches(src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int,
                  seed: int = 0, epoch: int = 0, shuffle: bool = True) -> list[np.ndarray]:
    """Cut sentences into length-sorted batches of at most ``max_tokens`` padded tokens.

    The padded size of a batch is ``len(batch) * max(longest source, longest target)``.
    With ``shuffle`` the tie-break inside equal lengths and the batch order depend
    on ``(seed, epoch)``; the plan is the same on every call with the same arguments.
    """
    rng = np.random.default_rng([seed, epoch])
    longest = np.maximum(src_lens, tgt_lens)
    if len(longest) and longest.max() > max_tokens:
        raise ValueError(f"a sentence of {int(longest.max())} tokens exceeds max_tokens "
                         f"{max_tokens}")
    order = _length_order(src_lens, tgt_lens, rng, shuffle)
    batches = _cut(longest[order], order, max_tokens)
    if shuffle:
        rng.shuffle(batches)
    return batches


def epoch_batches(data: EncodedSet, max_tokens: int, seed: int, epoch: int
                  ) -> list[np.ndarray]:
    """An epoch's training batches: :func:`token_batches` over every sentence, or over the
    sentences the set draws for this epoch (:meth:`EncodedSet.epoch_ids`: weighted
    corpora, joined pairs), in the set's own indices."""
    ids = data.epoch_ids(seed, epoch)
    if ids is None:
        return token_batches(data.src_lens, data.tgt_lens, max_tokens, seed, epoch)
    return [ids[b] for b in token_batches(*data.lengths(ids), max_tokens, seed, epoch)]


def _length_order(src_lens: np.ndarray, tgt_lens: np.ndarray, rng: np.random.Generator,
                  shuffle: bool) -> np.ndarray:
    """Indices by target length, then source length; ties broken by a seeded random draw
    (``shuffle``) or by index — the order of ``np.lexsort((noise, src, tgt))``. Lengths
    under 2,048 and 41 bits of the same noise fit one int64 key: one stable sort, several
    times faster than the three-key lexsort on millions of sentences."""
    noise = rng.random(len(src_lens)) if shuffle else None
    if len(src_lens) and max(int(src_lens.max()), int(tgt_lens.max())) >= 2048:
        return np.lexsort((noise if shuffle else np.arange(len(src_lens)), src_lens, tgt_lens))
    key = (tgt_lens.astype(np.int64) << 52) | (src_lens.astype(np.int64) << 41)
    if shuffle:
        key |= (noise * (1 << 41)).astype(np.int64)
    return np.argsort(key, kind="stable")


def _cut(widths: np.ndarray, order: np.ndarray, max_tokens: int) -> list[np.ndarray]:
    """Greedy cut of ``order`` (widths in that order) into batches whose size x widest
    stays within ``max_tokens``. One numpy step per batch, not a Python step per
    sentence: a batch starting at ``s`` holds at most ``max_tokens // widths[s]``
    sentences, and its widest-so-far grows with every sentence added."""
    batches, start, n = [], 0, len(widths)
    while start < n:
        room = max(1, max_tokens // int(widths[start]))
        window = widths[start: start + room]
        cost = np.arange(1, len(window) + 1) * np.maximum.accumulate(window)
        over = np.flatnonzero(cost > max_tokens)
        size = int(over[0]) if len(over) else len(window)
        batches.append(order[start: start + size])
        start += size
    return batches


def sentence_batches(lengths: np.ndarray | list[int], batch_size: int) -> list[np.ndarray]:
    """Indices sorted by length and cut into groups of ``batch_size`` (for decoding)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
