"""Does attention align words? Each run of a study on a synthetic task, scored against gold.

    .venv/bin/python benchmarks/alignment.py runs/demo     # after `make demo` (+ chapter 3)
    .venv/bin/python benchmarks/alignment.py runs/align-m30k --data ../shared/data/multi30k \
        --split test_2016_flickr --gold runs/silver/test_2016_flickr.de-en.align

The synthetic generator knows the word alignment of every pair it writes
(``attnmt.data.synthetic.gold_alignment``); a real corpus is scored against ``--gold``, e.g.
eflomal's silver alignment (``attnmt data silver-align``). For every run with attention in
the study folder, the attention of the test split, forced to the references, is read as word
alignments (argmax per target word) and scored against that gold — alignment error rate,
precision and recall — for the mean attention, each layer and each head (Transformer),
as written (the step that writes a word) and shifted (the step that reads it, Chen et al.
2020). Writes ``benchmarks/results/alignment_<study>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import save

from attnmt.data.corpus import read_lines
from attnmt.data.pharaoh import parse_pharaoh
from attnmt.data.synthetic import gold_alignment
from attnmt.inference.alignment import head_scores, read_gold
from attnmt.inference.translator import Translator
from attnmt.rundir import RunDir, study_runs


def pair_arguments(ap: argparse.ArgumentParser, sentences: int) -> None:
    """The study, and the split and gold :func:`load_pairs` reads."""
    ap.add_argument("study", type=Path, help="a study folder (the output of attnmt compare)")
    ap.add_argument("--sentences", type=int, default=sentences,
                    help="the first N pairs of the split (0: all)")
    ap.add_argument("--data", type=Path, help="the folder of the split (default: the study's "
                                              "synthetic data)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--gold", type=Path, help="a gold or silver Pharaoh file of the split "
                                              "(default: the synthetic generator's gold)")


def load_pairs(study: Path, data: Path | None, split: str, gold: Path | None, n: int):
    """The split's source and target lines (the first ``n``; 0: all), their gold (or
    silver) alignment, and what the data is (the synthetic task, or the gold file)."""
    if gold is None:
        data = data or study / "data"
        task = json.loads((data / "task.json").read_text())
        src, tgt = (read_lines(data / f"{split}.{task[k]}") for k in ("src", "tgt"))
        golds = [parse_pharaoh(gold_alignment(task["task"], a, b), "gold")
                 for a, b in zip(src, tgt, strict=True)]
        what = task["task"]
    else:
        cfg = RunDir(next(iter((study_runs(study) or {}).values()))).load_config()
        src_lang, tgt_lang = cfg.data.src, cfg.data.tgt
        src, tgt = (read_lines(data / f"{split}.{lang}") for lang in (src_lang, tgt_lang))
        golds = read_gold(str(gold), src, tgt)
        what = f"{src_lang}-{tgt_lang}, gold {gold.name}"
    n = n or len(src)
    return src[:n], tgt[:n], golds[:n], what


def _best(entries: list[dict]) -> dict | None:
    return min(entries, key=lambda e: e["aer"]) if entries else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pair_arguments(ap, sentences=0)
    args = ap.parse_args()
    src, tgt, golds, task = load_pairs(args.study, args.data, args.split, args.gold,
                                       args.sentences)
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
        "command": "python benchmarks/alignment.py " + " ".join(sys.argv[1:]),
        "study": str(args.study), "task": task, "split": args.split, "sentences": len(src),
        "method": "argmax",
        "runs": rows})


if __name__ == "__main__":
    main()
