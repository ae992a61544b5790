"""Figures: attention heatmaps, score by source length, learning curves (matplotlib, Agg)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # files only; in Jupyter the notebook's inline figures stay
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
                      out: str | Path, title: str = "", ax=None,
                      axes: Sequence[str] = ("source", "generated")) -> Path | None:
    """Heatmap of a (T, S) attention matrix: source on x, generated tokens on y (``axes``
    names the two, x first: a self-attention's are the attended and the attending token)."""
    w = np.asarray(weights, dtype=float)
    _font_for([*src_tokens, *tgt_tokens])
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(max(4, 0.32 * len(src_tokens) + 2),
                                        max(3, 0.3 * len(tgt_tokens) + 1.5)))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens, fontsize=8)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    if title:
        ax.set_title(title, fontsize=10)
    if own:
        fig.colorbar(im, ax=ax, fraction=0.03)
        fig.tight_layout()
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return Path(out)
    return None


def attention_grid(items: list[dict], out: str | Path, columns: int | None = None) -> Path:
    """Several heatmaps side by side (``columns`` per row; all in one row by default); each
    item has weights, src_tokens, tgt_tokens, title."""
    columns = columns or len(items)
    rows = -(-len(items) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 5.5 * rows), squeeze=False)
    for ax, item in zip(axes.flat, items):
        attention_heatmap(item["weights"], item["src_tokens"], item["tgt_tokens"], out,
                          item.get("title", ""), ax=ax)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
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


def learning_curves(series: dict[str, list[dict]], out: str | Path, metric: str = "bleu",
                    x: str = "minutes") -> Path:
    """Validation ``metric`` against training minutes (or ``x="updates"``), one line per
    run."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, points in series.items():
        pts = [p for p in points if metric in p]
        ax.plot([p["elapsed"] / 60 if x == "minutes" else p["step"] for p in pts],
                [p[metric] for p in pts], marker=".", label=name)
    ax.set_xlabel("training time (minutes)" if x == "minutes" else "updates")
    ax.set_ylabel(f"validation {metric}")
    return _finish(fig, ax, out)


def _finish(fig, ax, out: str | Path) -> Path:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)


def explain_figure(data: dict, t: int, out: str | Path) -> Path:
    """One output word's steps as a static figure (``attnmt explain --png``): the panels
    of the five steps for an RNN with attention, the one context vector for the
    fixed-context seq2seq, each layer's heads for the Transformer; the next words last."""
    _font_for([*data["src_tokens"], *data["tgt_tokens"]])
    src, step = data["src_tokens"], data["steps"][t]
    panels = {"attention": 5, "fixed-context": 2}.get(data["family"]) or \
        len(data["layers_kv"]) + 1
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, max(3.2, 0.28 * len(src) + 1.5)),
                             squeeze=False)
    axes = list(axes[0])
    if data["family"] == "attention":
        _rnn_panels(data, step, axes)
    elif data["family"] == "fixed-context":
        contexts = np.array([s["context"] for s in data["steps"]], dtype=float)
        axes[0].imshow(contexts, aspect="auto", cmap="RdBu_r", interpolation="nearest")
        axes[0].set_yticks(range(len(data["tgt_tokens"])), data["tgt_tokens"], fontsize=7)
        axes[0].set_title("1. the one context vector c,\nthe same at every output word", fontsize=9)
    else:
        for ell, ax in enumerate(axes[:-1]):
            w = np.array(step["layers"][ell]["cross"]["weights"], dtype=float)
            ax.imshow(w, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks(range(len(src)), src, rotation=90, fontsize=7)
            ax.set_yticks(range(len(w)), [f"head {h}" for h in range(len(w))], fontsize=7)
            ax.set_title(f"layer {ell}: cross-attention weights", fontsize=9)
    words, probs = zip(*step["top"])
    axes[-1].barh(range(len(words))[::-1], probs,
                  color=["#f79009" if w == step["chosen"] else "#2f6fde" for w in words])
    axes[-1].set_yticks(range(len(words))[::-1], words, fontsize=8)
    axes[-1].set_title(f"5. next word (greedy: {step['chosen']!r})", fontsize=9)
    title = f"output word {t}: {data['tgt_tokens'][t]!r} · {data['formula']}"
    fig.suptitle("\n".join(textwrap.wrap(title, 22 * panels + 20)), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def _rnn_panels(data: dict, step: dict, axes) -> None:
    src, y = data["src_tokens"], range(len(data["src_tokens"]))
    states = np.array(data["states"], dtype=float)
    weights = np.array(step["weights"], dtype=float)
    scores = np.array([np.nan if s is None else s for s in step["scores"]], dtype=float)
    axes[0].imshow(states, aspect="auto", cmap="RdBu_r", interpolation="nearest")
    axes[0].set_title("1. encoder states h̄ₛ", fontsize=9)
    axes[1].barh(list(y)[::-1], np.nan_to_num(scores, nan=0.0), color="#667085")
    axes[1].set_title("2. scores", fontsize=9)
    axes[2].barh(list(y)[::-1], weights, color="#2f6fde")
    axes[2].set_title("3. softmax weights", fontsize=9)
    contributions = np.vstack([weights[:, None] * states, np.array(step["context"])[None]])
    axes[3].imshow(contributions, aspect="auto", cmap="RdBu_r", interpolation="nearest")
    axes[3].set_title("4. aₜ(s)·h̄ₛ, and their sum cₜ (last row)", fontsize=9)
    for ax in axes[:4]:
        labels = src + ["= cₜ"] if ax is axes[3] else src
        positions = range(len(labels)) if ax in (axes[0], axes[3]) else list(y)[::-1]
        ax.set_yticks(positions, labels, fontsize=7)


ATTRIBUTION_TITLES = {"attention": "attention", "input_x_gradient": "|input × gradient|",
                      "integrated_gradients": "|integrated gradients|",
                      "masking": "|Δ log p| when masked"}


def attribution_figure(attr: dict, out: str | Path) -> Path:
    """Attention beside the attributions (``attnmt explain --attribution --png``): one
    heatmap per method, each row scaled to its largest magnitude so the panels compare
    by rank, the rank agreement with attention in each title."""
    items = []
    for method, scores in attr["methods"].items():
        w = np.abs(np.asarray(scores, dtype=float))
        w = w / np.maximum(w.max(1, keepdims=True), 1e-12)
        rho = attr["agreement"].get(f"attention~{method}", {}).get("mean")
        items.append({"weights": w, "src_tokens": attr["src_tokens"],
                      "tgt_tokens": attr["tgt_tokens"],
                      "title": ATTRIBUTION_TITLES[method] +
                      ("" if rho is None else f"\nSpearman with attention {rho:+.2f}")})
    return attention_grid(items, out, columns=min(4, len(items)))


def classifier_figure(data: dict, out: str | Path) -> Path:
    """What a classifier looks at (``attnmt explain CLASSIFIER_RUN --png``): the attention
    from the pooled position in every layer and head (one row each), and, when computed,
    the attributions for the predicted label (one row per method, each scaled to its
    largest magnitude)."""
    tokens = data["tokens"]
    _font_for(tokens)
    attention = np.asarray(data["attention"], dtype=float)            # (L, H, S)
    layers, heads, _ = attention.shape
    rows = [f"L{i} H{h}" for i in range(layers) for h in range(heads)]
    panels = [(attention.reshape(-1, len(tokens)), rows, "attention from the "
               + ("[CLS] position" if data["pooling"] == "cls" else "mean of all positions"))]
    if "methods" in data:
        names = [m for m in data["methods"] if m != "attention"]
        w = np.abs(np.asarray([data["methods"][m] for m in names], dtype=float))
        panels.append((w / np.maximum(w.max(1, keepdims=True), 1e-12),
                       [ATTRIBUTION_TITLES[m] for m in names],
                       f"attributions for '{data['label']}'"))
    heights = [len(p[1]) + 2 for p in panels]
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights},
                             figsize=(max(5, 0.36 * len(tokens) + 2.5), 0.3 * sum(heights) + 1.5))
    for ax, (w, labels, title) in zip(axes[:, 0], panels):
        im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-12, float(w.max())),
                       aspect="auto")
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.03)
    probs = ", ".join(f"{n} {p:.2f}" for n, p in zip(data["labels"], data["probabilities"]))
    fig.suptitle(f"{data['label']} ({probs})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return Path(out)
