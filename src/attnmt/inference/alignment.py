"""Word alignments read from attention, and how well they match a gold alignment.

An attention matrix says, for each target token, how much of each source token the decoder
used. Word alignment asks which source *words* each target word translates. The two meet
when the token weights are gathered into words — a source word's share is the sum of its
tokens' weights, a target word's row the mean of its tokens' rows, ``</s>`` left out on
both sides — and links are read off the word matrix: the most-attended source word per
target word (``argmax``, as Garg et al. 2019 and Chen et al. 2020 extract alignments from
Transformer heads) or every pair whose weight reaches a threshold (``threshold``).

Alignments are written and read in Pharaoh format, as fast_align and eflomal write them:
``i-j`` links source word ``i`` to target word ``j`` (whitespace words, from 0); a gold file
may also mark possible links ``i?j`` (Och & Ney 2003's *possible*, which a hypothesis may
have without penalty and need not have). Scored with their alignment error rate
``AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|)``, precision ``|A∩P| / |A|`` and recall
``|A∩S| / |S|`` over a corpus (S the sure links, P ⊇ S the possible ones, A the hypothesis).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.pharaoh import Gold, Link, parse_pharaoh
from ..errors import UserError

METHODS = ("argmax", "threshold")


def attention_matrix(result: dict, layer: int | None = None, head: int | None = None
                     ) -> tuple[np.ndarray, str]:
    """The (T, S) weights of an attention result (:meth:`Translator.attention`): the mean
    over everything when neither ``layer`` nor ``head`` is given, one layer (mean of its
    heads) or one head of it; and a title saying which."""
    if layer is None and head is None:
        return np.asarray(result["weights"]), result.get("title", "attention")
    if result["layers"] is None:
        raise UserError("--layer/--head apply to models with several attention layers "
                        "(the Transformer)")
    layers = np.asarray(result["layers"])                         # (layers, heads, T, S)
    if layer is None:
        raise UserError("--head needs --layer")
    check_layer_head(layers.shape[:2], layer, head)
    if head is None:
        return layers[layer].mean(0), f"layer {layer}, mean of heads"
    return layers[layer, head], f"layer {layer}, head {head}"


def check_layer_head(shape: Sequence[int], layer: int | None, head: int | None) -> None:
    """One line naming the model's real range when ``layer`` or ``head`` is past it."""
    if layer is not None and not 0 <= layer < shape[0]:
        raise UserError(f"--layer {layer} is out of range: layers 0..{shape[0] - 1}")
    if head is not None and not 0 <= head < shape[1]:
        raise UserError(f"--head {head} is out of range: heads 0..{shape[1] - 1}")


def word_matrix(weights: np.ndarray, src_words: Sequence[int], tgt_words: Sequence[int],
                shift: bool = False) -> np.ndarray:
    """Token weights (T, S), ``</s>`` last on both axes, -> word weights (target words,
    source words). ``src_words``/``tgt_words`` give each token's word (-1: none), ``</s>``
    excluded. ``shift`` reads target token t's row from the step that takes it as input
    (the one predicting token t+1): Chen et al. (2020)'s shift-att."""
    rows = slice(1, len(tgt_words) + 1) if shift else slice(0, len(tgt_words))
    w = np.asarray(weights, dtype=float)[rows, : len(src_words)]
    n_src, n_tgt = max(src_words, default=-1) + 1, max(tgt_words, default=-1) + 1
    out = np.zeros((n_tgt, n_src))
    counts = np.zeros(n_tgt)
    for t, j in enumerate(tgt_words):
        if j < 0:
            continue
        counts[j] += 1
        for s, i in enumerate(src_words):
            if i >= 0:
                out[j, i] += w[t, s]
    return out / np.maximum(counts, 1)[:, None]


def extract(words: np.ndarray, method: str = "argmax", threshold: float = 0.5) -> set[Link]:
    """Links (source word, target word) from a word matrix (target words, source words)."""
    if method not in METHODS:
        raise UserError(f"unknown alignment method {method!r}; choose from {', '.join(METHODS)}")
    if words.size == 0:
        return set()
    if method == "argmax":
        return {(int(i), j) for j, i in enumerate(words.argmax(1))}
    return {(int(i), int(j)) for j, i in zip(*np.nonzero(words >= threshold), strict=True)}


def score(hypotheses: Sequence[set[Link]], golds: Sequence[Gold]) -> dict:
    """Corpus AER, precision and recall (in percent) of ``hypotheses`` against ``golds``;
    precision is None without any hypothesis link, recall None without any sure link."""
    a = s = p_hits = s_hits = 0
    for hyp, gold in zip(hypotheses, golds, strict=True):
        a, s = a + len(hyp), s + len(gold.sure)
        p_hits += len(hyp & gold.possible)
        s_hits += len(hyp & gold.sure)
    return {"aer": round(100 * (1 - (s_hits + p_hits) / (a + s)), 2) if a + s else 0.0,
            "precision": round(100 * p_hits / a, 2) if a else None,
            "recall": round(100 * s_hits / s, 2) if s else None,
            "sentences": len(golds)}


def _word_weights(translator, result: dict, layer: int | None, head: int | None,
                  shift: bool = False) -> np.ndarray:
    weights, _ = attention_matrix(result, layer, head)
    src = translator.vocabs.src.word_index(result["src_ids"][:-1])        # </s> left out
    tgt = translator.vocabs.tgt.word_index(result["tgt_ids"][:-1])
    return word_matrix(weights, src, tgt, shift)


def _results(translator, sources: Sequence[str], targets: Sequence[str] | None, beam: int):
    """Each sentence's attention result (None for an empty line): forced to its target
    when ``targets`` are given, else over the model's own translation."""
    if not hasattr(translator, "forced_attention"):
        raise UserError("alignments are read from the attention of attnmt's own engine; "
                        "use --engine attnmt (the default) with a run directory")
    if targets is not None and len(targets) != len(sources):
        raise UserError(f"the target file has {len(targets)} lines and the source "
                        f"{len(sources)}; give one target line per source line")
    for k, text in enumerate(sources):
        if not text.strip() or (targets is not None and not targets[k].strip()):
            yield None
            continue
        check_fits(translator, text, None if targets is None else targets[k],
                   where=f"line {k + 1}: ")
        if targets is not None:
            yield translator.forced_attention(text, targets[k])
        else:
            yield translator.attention(text, beam=beam)


def check_fits(translator, text: str, target: str | None = None, *,
               target_ids: Sequence[int] | None = None, where: str = "") -> None:
    """A sentence the model would cut short cannot be aligned (or attributed) word for
    word: one line, prefixed by ``where``. The target is text or token ids (no ``</s>``)."""
    if target_ids is None and target is not None:
        target_ids = translator.vocabs.tgt.encode(target)
    sides = [("source", len(translator.vocabs.src.encode(text)), translator.src_cap)]
    if target_ids is not None:
        sides.append(("target", len(target_ids), translator.tgt_cap))
    for side, n, cap in sides:
        if n > cap - 1:
            raise UserError(f"{where}the {side} has {n} tokens and the model reads at most "
                            f"{cap - 1}; shorten or split it")


def align(translator, sources: Sequence[str], targets: Sequence[str] | None = None, *,
          method: str = "argmax", threshold: float = 0.5, layer: int | None = None,
          head: int | None = None, beam: int = 1, shift: bool = False
          ) -> tuple[list[set[Link]], list[str]]:
    """Word alignments of each source line with its target line (forced decoding) or, with
    no targets, with the model's own translation; and the target each alignment is of. An
    empty line on either side gives no links."""
    links, written = [], []
    for k, result in enumerate(_results(translator, sources, targets, beam)):
        if result is None:
            links.append(set())
            written.append("" if targets is None else targets[k])
            continue
        links.append(extract(_word_weights(translator, result, layer, head, shift), method,
                             threshold))
        written.append(result["translation"])
    return links, written


def read_gold(path: str, sources: Sequence[str], targets: Sequence[str]) -> list[Gold]:
    """A gold Pharaoh file, one line per sentence pair; its line count and every link's
    word positions are checked against the pairs (one line naming the first mismatch)."""
    from ..data.corpus import read_lines

    lines = read_lines(path)
    if len(lines) != len(sources):
        raise UserError(f"{path} has {len(lines)} lines and the source {len(sources)}; a "
                        "gold alignment needs one line per sentence pair")
    golds = []
    for n, (line, src, tgt) in enumerate(zip(lines, sources, targets, strict=True), 1):
        gold = parse_pharaoh(line, f"{path} line {n}")
        n_src, n_tgt = len(src.split()), len(tgt.split())
        bad = next(((i, j) for i, j in gold.possible if i >= n_src or j >= n_tgt), None)
        if bad:
            raise UserError(f"{path} line {n}: link {bad[0]}-{bad[1]} is past the sentence "
                            f"pair ({n_src} source and {n_tgt} target words)")
        golds.append(gold)
    return golds


def gold_score(translator, gold: Path, sources: Sequence[str], targets: Sequence[str]
               ) -> dict | None:
    """The attention's AER, precision and recall (mean attention, argmax, forced to the
    targets) against the gold file ``gold`` — None when there is no such file or the model
    has no attention to read (what ``evaluate`` and study reports add)."""
    if not gold.is_file() or not getattr(translator, "has_attention", False) or \
            getattr(translator, "engine", "") != "attnmt":
        return None
    golds = read_gold(str(gold), sources, targets)          # checked before any model work
    links, _ = align(translator, sources, targets)
    return score(links, golds)


def head_scores(translator, sources: Sequence[str], targets: Sequence[str],
                golds: Sequence[Gold], *, method: str = "argmax", threshold: float = 0.5,
                shift: bool = False) -> dict:
    """AER, precision and recall against ``golds`` of the mean attention and, for a model
    with several attention layers, of every layer (mean of its heads) and every head."""
    hyps: dict[tuple, list[set[Link]]] = {("mean", None, None): []}
    for n, result in enumerate(_results(translator, sources, targets, 1)):
        if result is not None and result["layers"] is not None and len(hyps) == 1:
            layers, heads = np.asarray(result["layers"]).shape[:2]
            for layer in range(layers):       # empty lines before this one: no links
                hyps[("layer", layer, None)] = [set() for _ in range(n)]
                for h in range(heads):
                    hyps[("head", layer, h)] = [set() for _ in range(n)]
        for key, found in hyps.items():
            found.append(set() if result is None else extract(
                _word_weights(translator, result, key[1], key[2], shift), method, threshold))
    scores = {"mean": score(hyps.pop(("mean", None, None)), golds), "layers": [],
              "heads": []}
    for (kind, layer, h), links in hyps.items():
        entry = {"layer": layer, **({"head": h} if kind == "head" else {}),
                 **score(links, golds)}
        scores["layers" if kind == "layer" else "heads"].append(entry)
    return scores
