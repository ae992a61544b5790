"""Does pre-training pay? Sentiment accuracy against the number of labelled sentences, from
scratch and fine-tuned from a masked-LM run (the BERT claim, measured small).

    attnmt data get sst --out data/sst
    attnmt train configs/mlm_sst.yaml --out runs/mlm-sst
    python benchmarks/sst_curve.py --task sst2 --mlm runs/mlm-sst

For each labelled-set size (a random sample of SST's training split, drawn per seed) and
seed, two classifiers from the task's config: one from random weights (its own
tokenizer, trained on its labelled sentences), one from the MLM run (its weights and
tokenizer). Both get the same updates: 15 epochs' worth at the config's batch (about 90
sentences), at least 60 and at most ``--max-steps``, validated ten times. Each arm may have
config overrides of its own (``--scratch-set``, ``--pretrained-set``: a fine-tuned encoder
may want another rate or pooling than one from scratch), chosen on SST's dev set. Each
run keeps the checkpoint best on the full dev set; test accuracy is measured once per run.
Finished runs are reused, so an interrupted curve resumes. Mean over seeds with a 95 %
t-interval; the gain is paired by seed. Writes
``benchmarks/results/sst_curve_<task>.json`` and ``docs/figures/sst_curve_<task>.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

from common import save

ROOT = Path(__file__).resolve().parents[1]
# Published test accuracies to print beside the curve, not to claim (SST's README).
LANDMARKS = {"sst2": {"Kim (2014) CNN, random embeddings": 82.7, "BERT-base": 93.5},
             "sst5": {"Kim (2014) CNN, random embeddings": 45.0}}
SENTENCES_PER_UPDATE = 90        # the task configs' max_tokens 2000 at SST's sentence length
T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def interval(values: list[float]) -> list[float]:
    """Mean and 95 % t-interval half-width of ``values`` (0 for a single value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return [round(mean, 2), 0.0]
    half = T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return [round(mean, 2), round(half, 2)]


def subset(folder: Path, size: int, seed: int) -> str:
    """The name of a split with ``size`` training rows drawn with ``seed`` (``train`` when
    ``size`` covers them all), written next to the task's files."""
    rows = (folder / "train.tsv").read_text(encoding="utf-8").splitlines()
    if size <= 0 or size >= len(rows):
        return "train"
    name = f"train_n{size}_s{seed}"
    picked = random.Random(f"{seed}-{size}").sample(rows, size)
    (folder / f"{name}.tsv").write_text("".join(r + "\n" for r in picked), encoding="utf-8")
    return name


def updates(labelled: int, cap: int) -> int:
    """The updates a classifier trained on ``labelled`` sentences gets (module docstring)."""
    return min(cap, max(60, math.ceil(15 * labelled / SENTENCES_PER_UPDATE)))


def run_one(config: Path, out: Path, split: str, seed: int, mlm: str | None, steps: int,
            threads: int, extra: list[str]) -> dict:
    """Train (unless finished) and test one classifier; its best dev and test accuracy.
    ``extra``: the arm's own config overrides (chosen on dev)."""
    if not (out / "eval/test.json").is_file():
        sets = [f"data.train={split}", f"train.seed={seed}", f"train.max_steps={steps}",
                f"train.valid_every={max(10, steps // 10)}", f"train.threads={threads}",
                *extra]
        if mlm:
            sets.append(f"train.init_from={mlm}")
        cli = [sys.executable, "-m", "attnmt.cli"]
        subprocess.run([*cli, "train", str(config), "--out", str(out), "--quiet",
                        *(x for s in sets for x in ("--set", s))], check=True)
        subprocess.run([*cli, "evaluate", str(out), "--split", "test"], check=True,
                       stdout=subprocess.DEVNULL,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    test = json.loads((out / "eval/test.json").read_text())
    valid = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"seed": seed, "test_accuracy": round(test["accuracy"], 2),
            "test_macro_f1": round(test["macro_f1"], 2),
            "dev_accuracy": round(max(r["accuracy"] for r in valid if r["type"] == "valid"), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(LANDMARKS), default="sst2")
    ap.add_argument("--mlm", required=True, help="the masked-LM run to fine-tune from")
    ap.add_argument("--data", type=Path, default=ROOT / "data/sst")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000, 0],
                    help="labelled sentences (0 = the whole training split)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", type=Path, default=ROOT / "runs/sst-curve")
    ap.add_argument("--max-steps", type=int, default=400, help="most updates of a run")
    ap.add_argument("--scratch-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the runs from scratch (repeatable)")
    ap.add_argument("--pretrained-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for the fine-tuned runs (repeatable)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per run (1: two "
                    "curves side by side on two cores; the same updates, only the rounding "
                    "may differ)")
    args = ap.parse_args()
    config = ROOT / f"configs/{args.task}_encoder.yaml"
    folder = args.data / args.task
    total = len((folder / "train.tsv").read_text(encoding="utf-8").splitlines())
    rows = []
    for size in args.sizes:
        n = size if 0 < size < total else total
        arms: dict = {"scratch": [], "pretrained": []}
        for seed in args.seeds:
            split = subset(folder, size, seed)
            for arm, mlm, extra in (("scratch", None, args.scratch_set),
                                    ("pretrained", args.mlm, args.pretrained_set)):
                out = args.out / args.task / f"{arm}-n{n}-s{seed}"
                arms[arm].append(run_one(config, out, split, seed, mlm,
                                         updates(n, args.max_steps), args.threads, extra))
        acc = {arm: [r["test_accuracy"] for r in runs] for arm, runs in arms.items()}
        gain = [p - s for p, s in zip(acc["pretrained"], acc["scratch"], strict=True)]
        rows.append({"labelled": n, "scratch": interval(acc["scratch"]),
                     "pretrained": interval(acc["pretrained"]), "gain": interval(gain),
                     "runs": arms})
        r = rows[-1]
        print(f"{n:5d} labelled: scratch {r['scratch'][0]:5.2f} ± {r['scratch'][1]:.2f}  "
              f"pretrained {r['pretrained'][0]:5.2f} ± {r['pretrained'][1]:.2f}  gain "
              f"{r['gain'][0]:+.2f} ± {r['gain'][1]:.2f}", flush=True)
    figure = ROOT / f"docs/figures/sst_curve_{args.task}.png"
    if len(rows) > 1:                        # one size is a table row, not a curve
        plot(rows, args.task, figure)
    save(f"sst_curve_{args.task}", {
        "task": args.task, "mlm": args.mlm, "config": str(config.relative_to(ROOT)),
        "overrides": {"scratch": args.scratch_set, "pretrained": args.pretrained_set},
        "seeds": args.seeds, "rows": rows, "landmarks": LANDMARKS[args.task],
        "figure": str(figure.relative_to(ROOT)) if len(rows) > 1 else None,
        "command": " ".join(["python benchmarks/sst_curve.py", *sys.argv[1:]])})


def plot(rows: list[dict], task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sizes = [r["labelled"] for r in rows]
    for arm, label in (("scratch", "from scratch"), ("pretrained", "MLM pre-trained")):
        ax.errorbar(sizes, [r[arm][0] for r in rows], yerr=[r[arm][1] for r in rows],
                    marker="o", capsize=3, label=label)
    for i, (name, value) in enumerate(LANDMARKS[task].items()):
        ax.axhline(value, color="grey", linestyle=":" if i else "--", linewidth=1)
        ax.annotate(f"{name} {value}", (sizes[0], value), fontsize=8, color="grey",
                    xytext=(0, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training sentences")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(f"{task.upper()}: mean of {len(rows[0]['runs']['scratch'])} seeds, 95 % "
                 "interval")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
