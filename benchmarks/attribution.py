"""Is attention an explanation? Attention beside two gradient attributions and masking, per
run of a study, over the first sentences of a test split.

    .venv/bin/python benchmarks/attribution.py runs/align-m30k --data ../shared/data/multi30k \\
        --split test_2016_flickr --gold runs/silver/test_2016_flickr.de-en.align --sentences 100
    .venv/bin/python benchmarks/attribution.py runs/demo --sentences 100   # synthetic gold

Each sentence pair is forced to its reference (the rows of every method then belong to
the words the gold alignment links). For every run, pooled over all output tokens: the
Spearman correlation of each pair of methods (attention, input x gradient, integrated
gradients, masking; ``attnmt.explain.attribution``) and how often their top source token
is the same; and every method read as a word alignment (argmax of magnitudes per target
word) scored against the gold — AER, as the attention itself is in
``benchmarks/alignment.py``. Writes ``benchmarks/results/attribution_<study>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from alignment import load_pairs, pair_arguments
from common import save

from attnmt.explain.attribution import attribute, pool
from attnmt.inference.alignment import extract, score, word_matrix
from attnmt.inference.translator import Translator
from attnmt.rundir import study_runs


def _run(translator, src, tgt, golds, ig_steps: int) -> dict:
    found_all, links, kept = [], {}, []
    start = time.perf_counter()
    for k, (a, b) in enumerate(zip(src, tgt, strict=True)):
        if not a.strip() or not b.strip():
            continue
        found = attribute(translator, a, b, ig_steps=ig_steps)
        found_all.append(found)
        kept.append(golds[k])
        src_words = translator.vocabs.src.word_index(translator.encode_source(a)[:-1])
        tgt_words = translator.vocabs.tgt.word_index(translator.vocabs.tgt.encode(b))
        for method, scores in found["methods"].items():
            words = word_matrix(np.abs(scores), src_words, tgt_words)
            links.setdefault(method, []).append(extract(words))
    seconds = time.perf_counter() - start
    return {"agreement": pool(found_all),
            "aer": {m: score(hyps, kept)["aer"] for m, hyps in links.items()},
            "ig_delta_median": round(float(np.median([f["ig_delta"] for f in found_all])), 4),
            "sentences": len(found_all), "seconds_per_sentence": round(seconds /
                                                                       len(found_all), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pair_arguments(ap, sentences=100)
    ap.add_argument("--ig-steps", type=int, default=16)
    args = ap.parse_args()
    src, tgt, golds, task = load_pairs(args.study, args.data, args.split, args.gold,
                                       args.sentences)
    rows = {}
    for name, path in (study_runs(args.study) or {}).items():
        translator = Translator.from_run(path)
        if not translator.has_attention:
            continue
        rows[name] = _run(translator, src, tgt, golds, args.ig_steps)
        r = rows[name]
        print(f"{name:<18} AER " + ", ".join(f"{m} {v:.1f}" for m, v in r["aer"].items())
              + "  Spearman " + ", ".join(f"{p} {v['spearman']:+.2f}"
                                         for p, v in r["agreement"].items()))
    save(f"attribution_{args.study.name}", {
        "command": "python benchmarks/attribution.py " + " ".join(sys.argv[1:]),
        "study": str(args.study), "task": task, "split": args.split,
        "sentences": len(src), "ig_steps": args.ig_steps, "forced_to": "the references",
        "runs": rows})


if __name__ == "__main__":
    main()
