"""Figures: attention heatmaps, score by source length, learning curves (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _font_for(tokens: Sequence[str]) -> None:
    """Pick a font that has Hangul/CJK glyphs when tokens need them (if one is installed)."""
    if any(ord(c) > 0x2FFF for t in tokens for c in t):
        from matplotlib import font_manager

        names = {f.name for f in font_manager.fontManager.ttflist}
        for name in ("Noto Sans CJK KR", "NanumGothic", "Noto Sans CJK JP", "Droid Sans Fallback"):
            if name in names:
                plt.rcParams["font.family"] = name
                return


def attention_heatmap(weights, src_tokens: Sequence[str], tgt_tokens: Sequence[str],
                      out: str | Path, title: str = "", ax=None) -> Path | None:
    """Heatmap of a (T, S) attention matrix: source on x, generated tokens on y."""
    w = np.asarray(weights, dtype=float)
    _font_for([*src_tokens, *tgt_tokens])
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(max(4, 0.32 * len(src_tokens) + 2),
                                        max(3, 0.3 * len(tgt_tokens) + 1.5)))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("generated")
    if title:
        ax.set_title(title, fontsize=10)
    if own:
        fig.colorbar(im, ax=ax, fraction=0.03)
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return Path(out)
    return None


def attention_grid(items: list[dict], out: str | Path) -> Path:
    """Several heatmaps side by side; each item has weights, src_tokens, tgt_tokens, title."""
    fig, axes = plt.subplots(1, len(items), figsize=(5.5 * len(items), 5.5), squeeze=False)
    for ax, item in zip(axes[0], items):
        attention_heatmap(item["weights"], item["src_tokens"], item["tgt_tokens"], out,
                          item.get("title", ""), ax=ax)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def score_by_length(series: dict[str, list[dict]], out: str | Path, metric: str = "bleu",
                    title: str = "", xlabel: str = "source length (words)") -> Path:
    """One line per model: ``metric`` per source-length bucket (Bahdanau et al. 2015, Fig. 2),
    with each bucket's sentence count under its label and, where the rows carry one, the
    95 % bootstrap interval (``ci95``) as an error bar."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    counts: dict[str, int] = {}
    for rows in series.values():
        for r in rows:
            counts.setdefault(r["bucket"], r["n"])
    buckets = sorted(counts, key=lambda b: int(b.split("-")[0].rstrip("+")))
    offsets = np.linspace(-0.12, 0.12, len(series)) if len(series) > 1 else [0.0]
    for (name, rows), shift in zip(series.items(), offsets):
        by = {r["bucket"]: r for r in rows}
        xs = [i for i, b in enumerate(buckets) if b in by]
        ys = [by[buckets[i]][metric] for i in xs]
        spans = [by[buckets[i]].get("ci95") for i in xs]
        if all(spans):
            err = [[y - lo for y, (lo, _) in zip(ys, spans)],
                   [hi - y for y, (_, hi) in zip(ys, spans)]]
            ax.errorbar([x + shift for x in xs], ys, yerr=np.clip(err, 0, None), marker="o",
                        capsize=2, label=name)
        else:
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xticks(range(len(buckets)), [f"{b}\nn={counts[b]}" for b in buckets])
    ax.set_xlabel(xlabel + (" · bars: 95 % bootstrap interval" if any(
        r.get("ci95") for rows in series.values() for r in rows) else ""))
    ax.set_ylabel({"bleu": "BLEU", "chrf": "chrF", "exact": "exact match (%)"}.get(metric, metric))
    ax.set_title(title or f"{metric} by source length")
    return _finish(fig, ax, out)


def learning_curves(series: dict[str, list[dict]], out: str | Path, metric: str = "bleu") -> Path:
    """Validation ``metric`` against wall-clock minutes, one line per run."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in series.items():
        pts = [p for p in points if metric in p]
        ax.plot([p["elapsed"] / 60 for p in pts], [p[metric] for p in pts], marker=".",
                label=name)
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel(f"validation {metric}")
    return _finish(fig, ax, out)


def _finish(fig, ax, out: str | Path) -> Path:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)
