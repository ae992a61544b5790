"""Metrics: sacreBLEU BLEU and chrF on detokenized cased text, exact match, scores by length,
and classification accuracy / macro-F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sacrebleu

DEFAULT_BUCKETS = (10, 20, 30)  # 1–10, 11–20, 21–30, 31+


def corpus_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict:
    """BLEU, chrF (with their sacreBLEU signatures) and exact match, in percent; BLEU's
    1- to 4-gram precisions, and the length of the output over the reference's (BLEU's
    tokens), where a brevity penalty comes from."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if not hyps:
        return {"bleu": 0.0, "chrf": 0.0, "exact": 0.0, "n": 0, "length_ratio": 0.0}
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    exact = 100.0 * sum(h.strip() == r.strip()
                        for h, r in zip(hyps, refs, strict=True)) / len(hyps)
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2), "exact": round(exact, 2),
            "n": len(hyps), "length_ratio": round(b.sys_len / max(b.ref_len, 1), 3),
            "bleu_precisions": [round(x, 1) for x in b.precisions],
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def bucket_name(length: int, edges: Sequence[int]) -> str:
    low = 1
    for edge in edges:
        if length <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}+"


def merge_sparse_buckets(src_lengths: Sequence[int], edges: Sequence[int],
                         min_count: int) -> list[int]:
    """Drop bucket edges until every bucket holds at least ``min_count`` sentences (or one
    bucket is left): a small bucket joins its right neighbour, the last one its left, so a
    score is never drawn from a handful of sentences."""
    edges = sorted(edges)
    while edges:
        counts = [0] * (len(edges) + 1)
        for n in src_lengths:
            counts[sum(n > e for e in edges)] += 1
        small = [i for i, c in enumerate(counts) if c < min_count]
        if not small:
            break
        i = small[0]
        del edges[i if i < len(edges) else i - 1]
    return edges


def bootstrap_interval(hyps: Sequence[str], refs: Sequence[str], metric: str,
                       samples: int = 1000) -> tuple[float, float]:
    """A 95 % bootstrap interval of one corpus score: sacreBLEU's resampling (seeded by
    ``SACREBLEU_SEED``, 12345 by default) for BLEU and chrF, the same percentile bootstrap
    over sentences for exact match."""
    if metric == "exact":
        hits = np.array([h.strip() == r.strip() for h, r in zip(hyps, refs, strict=True)],
                        dtype=float)
        rng = np.random.default_rng(12345)
        means = 100.0 * hits[rng.integers(0, len(hits), (samples, len(hits)))].mean(1)
        low, high = np.percentile(means, [2.5, 97.5])
        return round(float(low), 2), round(float(high), 2)
    if metric not in ("bleu", "chrf"):
        raise ValueError(f"no bootstrap interval for metric {metric!r}")
    scorer = sacrebleu.metrics.BLEU() if metric == "bleu" else sacrebleu.metrics.CHRF()
    score = scorer.corpus_score(list(hyps), [list(refs)], n_bootstrap=samples)
    return round(float(score._mean - score._ci), 2), round(float(score._mean + score._ci), 2)


def scores_by_length(hyps: Sequence[str], refs: Sequence[str], src_lengths: Sequence[int],
                     edges: Sequence[int] = DEFAULT_BUCKETS, interval: str | None = None
                     ) -> list[dict]:
    """Corpus scores per source-length bucket, in bucket order (Bahdanau et al. 2015, Fig. 2);
    with ``interval`` set to a metric, each row also holds that metric's 95 % bootstrap
    interval as ``ci95``."""
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(src_lengths):
        groups.setdefault(bucket_name(n, edges), []).append(i)
    names = [bucket_name(e, edges) for e in edges] + [bucket_name(10**9, edges)]
    rows = []
    for name in names:
        if name in groups:
            bucket_hyps = [hyps[i] for i in groups[name]]
            bucket_refs = [refs[i] for i in groups[name]]
            s = corpus_scores(bucket_hyps, bucket_refs)
            row = {"bucket": name, "n": s["n"], "bleu": s["bleu"], "chrf": s["chrf"],
                   "exact": s["exact"]}
            if interval:
                row["ci95"] = list(bootstrap_interval(bucket_hyps, bucket_refs, interval))
            rows.append(row)
    return rows


def classification_scores(gold: list[int], pred: list[int], n_labels: int) -> dict:
    """Accuracy and macro-F1 in percent, and the confusion matrix (rows = gold)."""
    confusion = np.zeros((n_labels, n_labels), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        confusion[g, p] += 1
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(n_labels), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(n_labels), where=confusion.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n_labels),
                   where=(precision + recall) > 0)
    present = confusion.sum(1) > 0
    return {"accuracy": round(100 * tp.sum() / max(1, len(gold)), 2),
            "macro_f1": round(100 * float(f1[present].mean()) if present.any() else 0.0, 2),
            "confusion": confusion.tolist()}
