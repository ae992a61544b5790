"""Does attention align words? Each run of a study on a synthetic task, scored against gold.

    .venv/bin/python benchmarks/alignment.py runs/demo     # after `make demo` (+ chapter 3)

The synthetic generator knows the word alignment of every pair it writes
(``attnmt.data.synthetic.gold_alignment``). For every run with attention in the study
folder, the attention of the test split, forced to the references, is read as word
alignments (argmax per target word) and scored against that gold — alignment error rate,
precision and recall — for the mean attention, each layer and each head (Transformer),
as written (the step that writes a word) and shifted (the step that reads it, Chen et al.
2020). Writes ``benchmarks/results/alignment_<study>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import save

from attnmt.data.synthetic import gold_alignment
from attnmt.inference.alignment import head_scores, parse_pharaoh
from attnmt.inference.translator import Translator
from attnmt.rundir import study_runs


def _best(entries: list[dict]) -> dict | None:
    return min(entries, key=lambda e: e["aer"]) if entries else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="a study folder (the output of attnmt compare)")
    ap.add_argument("--sentences", type=int, default=0, help="the first N test pairs (0: all)")
    args = ap.parse_args()
    data = args.study / "data"
    task = json.loads((data / "task.json").read_text())
    src = (data / f"test.{task['src']}").read_text().splitlines()
    tgt = (data / f"test.{task['tgt']}").read_text().splitlines()
    if args.sentences:
        src, tgt = src[: args.sentences], tgt[: args.sentences]
    golds = [parse_pharaoh(gold_alignment(task["task"], a, b), "gold")
             for a, b in zip(src, tgt, strict=True)]
    rows = {}
    for name, path in (study_runs(args.study) or {}).items():
        translator = Translator.from_run(path)
        if not translator.has_attention:
            continue
        rows[name] = {}
        for mode, shift in (("as written", False), ("shifted", True)):
            s = head_scores(translator, src, tgt, golds, shift=shift)
            rows[name][mode] = {**s, "best_layer": _best(s["layers"]),
                                "best_head": _best(s["heads"])}
            best = rows[name][mode]["best_head"]
            print(f"{name:<14} {mode:<11} mean AER {s['mean']['aer']:6.2f}"
                  + (f"  best head L{best['layer']}H{best['head']} {best['aer']:6.2f}"
                     if best else ""))
    save(f"alignment_{args.study.name}", {
        "command": f"python benchmarks/alignment.py {args.study}", "study": str(args.study),
        "task": task["task"], "split": "test", "sentences": len(src), "method": "argmax",
        "runs": rows})


if __name__ == "__main__":
    main()
