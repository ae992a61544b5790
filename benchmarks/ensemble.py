"""Ensembles on Multi30k: test BLEU of each run alone and of their ensembles (beam search).

    python benchmarks/ensemble.py runs/ens-s1 runs/ens-s2 runs/ens-s3 --tag m30k

Writes benchmarks/results/ensemble_<tag>.json. The runs must share their vocabularies
(same data and tokenizer settings, different seeds)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import sacrebleu
from common import MULTI30K as DATA
from common import save

from attnmt.inference.translator import Translator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--tag", default="m30k")
    args = parser.parse_args()
    src = (DATA / f"{args.split}.de").read_text().splitlines()
    ref = (DATA / f"{args.split}.en").read_text().splitlines()
    sets = [[r] for r in args.runs] + [args.runs[:k] for k in range(2, len(args.runs) + 1)]
    rows = []
    for members in sets:
        tr = Translator.from_runs(members)
        start = time.perf_counter()
        out = [h[0].text for h in tr.translate(src, beam=args.beam)]
        seconds = time.perf_counter() - start
        bleu = sacrebleu.corpus_bleu(out, [ref]).score
        rows.append({"runs": [Path(m).name for m in members], "bleu": round(bleu, 2),
                     "sentences_per_s": round(len(src) / seconds, 1)})
        name = "+".join(rows[-1]["runs"])
        print(f"{name:30s} BLEU {bleu:5.2f}  {len(src) / seconds:6.1f} sent/s")
    save(f"ensemble_{args.tag}", {"split": args.split, "beam": args.beam, "rows": rows,
                                  "command": "python benchmarks/ensemble.py "
                                             + " ".join(args.runs)})


if __name__ == "__main__":
    main()
