"""Which heads matter? The score lost when each cross-attention head is silenced, beside
how well that head aligns (Michel et al. 2019's head importance, at corpus level).

    .venv/bin/python benchmarks/head_importance.py runs/demo/runs/transformer --data runs/demo/data

For a Transformer run, the test split is translated (greedy) with every decoder
cross-attention head in turn silenced for the whole translation
(``Translator.translate(zero_heads=...)``, the explainer's intervention applied to every
sentence), and the loss in BLEU and exact match against the full model is recorded; where
the data is a synthetic task, each head's AER against the generator's gold is put beside it.
Writes ``benchmarks/results/head_importance_<run>.json`` and
``docs/figures/head_importance_<run>.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import save  # noqa: E402

from attnmt.data.synthetic import gold_alignment  # noqa: E402
from attnmt.inference.alignment import head_scores, parse_pharaoh  # noqa: E402
from attnmt.inference.metrics import corpus_scores  # noqa: E402
from attnmt.inference.translator import Translator  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs/figures"


def _spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation (ties get their mean rank)."""
    def ranks(x):
        x = np.asarray(x, dtype=float)
        r = np.empty(len(x))
        r[np.argsort(x, kind="stable")] = np.arange(len(x))
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r
    return round(float(np.corrcoef(ranks(a), ranks(b))[0, 1]), 3)


def _figure(rows: list[dict], out: Path, title: str) -> None:
    names = [f"L{r['layer']}H{r['head']}" for r in rows]
    panels = 2 if all("aer" in r for r in rows) else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels + 1, 3.6), squeeze=False)
    axes[0][0].bar(names, [r["exact_lost"] for r in rows])
    axes[0][0].set_ylabel("exact match lost (points)")
    axes[0][0].set_title("silencing the head", fontsize=10)
    if panels == 2:
        axes[0][1].bar(names, [r["aer"] for r in rows], color="tab:orange")
        axes[0][1].set_ylabel("AER of the head alone")
        axes[0][1].set_title("the head as an alignment", fontsize=10)
    for ax in axes[0]:
        ax.tick_params(axis="x", rotation=90)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, help="the folder with the test split (default: the "
                                              "run's data.dir)")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    translator = Translator.from_run(args.run)
    cfg = translator.cfg
    if translator.model.attention_shape is None:
        raise SystemExit(f"{args.run} has one attention, not layers of heads")
    data = args.data or Path(cfg.data.dir)
    src = (data / f"{args.split}.{cfg.data.src}").read_text().splitlines()
    ref = (data / f"{args.split}.{cfg.data.tgt}").read_text().splitlines()
    full = corpus_scores([h[0].text for h in translator.translate(src, beam=1)], ref)
    task = data / "task.json"
    aer = {}
    if task.is_file():
        name = json.loads(task.read_text())["task"]
        golds = [parse_pharaoh(gold_alignment(name, a, b), "gold") for a, b in zip(src, ref,
                                                                                    strict=True)]
        aer = {(h["layer"], h["head"]): h["aer"]
               for h in head_scores(translator, src, ref, golds)["heads"]}
    layers, heads = translator.model.attention_shape
    rows = []
    for layer in range(layers):
        for head in range(heads):
            hyps = [h[0].text for h in translator.translate(src, beam=1,
                                                           zero_heads=[(layer, head)])]
            s = corpus_scores(hyps, ref)
            rows.append({"layer": layer, "head": head, "bleu_lost": round(full["bleu"]
                                                                          - s["bleu"], 2),
                         "exact_lost": round(full["exact"] - s["exact"], 2),
                         **({"aer": aer[layer, head]} if aer else {})})
            print(rows[-1])
    _figure(rows, FIGURES / f"head_importance_{args.run.name}.png",
            f"{args.run.name}: {len(src)} {args.split} sentences, greedy")
    save(f"head_importance_{args.run.name}", {
        "command": f"python benchmarks/head_importance.py {args.run}"
                   + (f" --data {args.data}" if args.data else ""),
        "run": str(args.run), "split": args.split, "sentences": len(src),
        "full": {"bleu": full["bleu"], "exact": full["exact"]}, "heads": rows,
        **({"spearman_exact_lost_vs_aer": _spearman([r["exact_lost"] for r in rows],
                                                    [r["aer"] for r in rows]),
            "spearman_bleu_lost_vs_aer": _spearman([r["bleu_lost"] for r in rows],
                                                   [r["aer"] for r in rows])} if aer else {})})


if __name__ == "__main__":
    main()
