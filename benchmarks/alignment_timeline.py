"""When does attention become alignment? AER and exact match at every kept checkpoint.

    .venv/bin/attnmt train CONFIG --out runs/align-timeline --set train.keep_every=25
    .venv/bin/python benchmarks/alignment_timeline.py runs/align-timeline --sentences 200

For a run on a synthetic task that kept its weights along the way (``train.keep_every``),
each kept checkpoint decodes the first N test sentences (greedy, exact match against the
references) and its attention, forced to the references, is scored against the
generator's gold word alignment (AER, argmax per target word; as written and shifted).
Writes ``benchmarks/results/alignment_timeline_<run>.json`` and
``docs/figures/alignment_timeline_<run>.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from common import save  # noqa: E402

from attnmt.data.pharaoh import parse_pharaoh  # noqa: E402
from attnmt.data.synthetic import gold_alignment  # noqa: E402
from attnmt.inference.alignment import align, score  # noqa: E402
from attnmt.inference.metrics import corpus_scores  # noqa: E402
from attnmt.inference.translator import Translator  # noqa: E402
from attnmt.rundir import RunDir  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs/figures"


def _point(run: Path, step: int, src: list[str], tgt: list[str], golds) -> dict:
    translator = Translator.from_run(run, checkpoint=str(step))
    hyps = [h[0].text for h in translator.translate(src, beam=1)]
    point = {"step": step, "exact": corpus_scores(hyps, tgt)["exact"]}
    for mode, shift in (("aer", False), ("aer_shifted", True)):
        links, _ = align(translator, src, tgt, shift=shift)
        point[mode] = score(links, golds)["aer"]
    return point


def _figure(points: list[dict], out: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    steps = [p["step"] for p in points]
    ax.plot(steps, [p["exact"] for p in points], marker=".", label="test exact match %")
    ax.plot(steps, [p["aer"] for p in points], marker=".", label="attention AER (as written)")
    ax.plot(steps, [p["aer_shifted"] for p in points], marker=".", linestyle="--",
            label="attention AER (shifted)")
    ax.set_xlabel("updates")
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--sentences", type=int, default=200)
    args = ap.parse_args()
    rd = RunDir(args.run)
    cfg = rd.load_config()
    data = Path(cfg.data.dir)
    task = json.loads((data / "task.json").read_text())
    src = (data / f"test.{cfg.data.src}").read_text().splitlines()[: args.sentences]
    tgt = (data / f"test.{cfg.data.tgt}").read_text().splitlines()[: args.sentences]
    golds = [parse_pharaoh(gold_alignment(task["task"], a, b), "gold")
             for a, b in zip(src, tgt, strict=True)]
    steps = rd.kept_steps()
    if not steps:
        raise SystemExit(f"{args.run} kept no checkpoints: train it with train.keep_every")
    points = []
    for step in steps:
        points.append(_point(args.run, step, src, tgt, golds))
        print(points[-1])
    name = args.run.name
    _figure(points, FIGURES / f"alignment_timeline_{name}.png",
            f"{args.run.name} on {task['task']}: {len(src)} test pairs")
    save(f"alignment_timeline_{name}", {
        "command": f"python benchmarks/alignment_timeline.py {args.run} --sentences "
                   f"{args.sentences}", "run": str(args.run), "preset": cfg.model.preset,
        "task": task["task"], "sentences": len(src), "points": points})


if __name__ == "__main__":
    main()
