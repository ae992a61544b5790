"""Which heads matter? The score lost when each cross-attention head is silenced, beside
how well that head aligns (Michel et al. 2019's head importance, at corpus level).

    .venv/bin/python benchmarks/head_importance.py runs/demo/runs/transformer --data runs/demo/data
    .venv/bin/python benchmarks/head_importance.py runs/align-m30k/runs/transformer-small \
        --data ../shared/data/multi30k --split test_2016_flickr \
        --gold runs/silver/test_2016_flickr.de-en.align --metric bleu --tag multi30k

For a Transformer run, the test split is translated (greedy) with every decoder
cross-attention head in turn silenced for the whole translation
(``Translator.translate(zero_heads=...)``, the explainer's intervention applied to every
sentence), and the loss in BLEU and exact match against the full model is recorded; each
head's AER is put beside it, against the generator's gold where the data is a synthetic
task, or against ``--gold`` (e.g. eflomal's silver alignment: ``attnmt data
silver-align``). Writes ``benchmarks/results/head_importance_<tag or run>.json`` and
``docs/figures/head_importance_<tag or run>.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import save  # noqa: E402

from attnmt.data.pharaoh import parse_pharaoh  # noqa: E402
from attnmt.data.synthetic import gold_alignment  # noqa: E402
from attnmt.explain.attribution import spearman  # noqa: E402
from attnmt.inference.alignment import head_scores, read_gold  # noqa: E402
from attnmt.inference.metrics import corpus_scores  # noqa: E402
from attnmt.inference.translator import Translator  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs/figures"


def _spearman(a: list[float], b: list[float]) -> float | None:
    rho = spearman(a, b)
    return None if rho is None else round(rho, 3)


def _figure(rows: list[dict], out: Path, title: str, metric: str) -> None:
    names = [f"L{r['layer']}H{r['head']}" for r in rows]
    panels = 2 if all("aer" in r for r in rows) else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels + 1, 3.6), squeeze=False)
    axes[0][0].bar(names, [r[f"{metric}_lost"] for r in rows])
    axes[0][0].set_ylabel(f"{'BLEU' if metric == 'bleu' else 'exact match'} lost (points)")
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
    ap.add_argument("--gold", type=Path, help="a gold (or silver) Pharaoh file of the split "
                                              "(default: the synthetic task's own)")
    ap.add_argument("--metric", default="exact", choices=["exact", "bleu"],
                    help="what the figure shows lost")
    ap.add_argument("--tag", default=None, help="name of the results (default: the run's)")
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
    aer, golds = {}, None
    if args.gold:
        golds = read_gold(str(args.gold), src, ref)
    elif task.is_file():
        name = json.loads(task.read_text())["task"]
        golds = [parse_pharaoh(gold_alignment(name, a, b), "gold") for a, b in zip(src, ref,
                                                                                    strict=True)]
    if golds is not None:
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
    tag = args.tag or args.run.name
    _figure(rows, FIGURES / f"head_importance_{tag}.png",
            f"{args.run.name}: {len(src)} {args.split} sentences, greedy", args.metric)
    save(f"head_importance_{tag}", {
        "command": "python benchmarks/head_importance.py " + " ".join(sys.argv[1:]),
        "run": str(args.run), "split": args.split, "sentences": len(src),
        "gold": str(args.gold) if args.gold else "the synthetic task's own",
        "full": {"bleu": full["bleu"], "exact": full["exact"]}, "heads": rows,
        **({"spearman_exact_lost_vs_aer": _spearman([r["exact_lost"] for r in rows],
                                                    [r["aer"] for r in rows]),
            "spearman_bleu_lost_vs_aer": _spearman([r["bleu_lost"] for r in rows],
                                                   [r["aer"] for r in rows])} if aer else {})})


if __name__ == "__main__":
    main()
