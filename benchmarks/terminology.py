"""Terminology by constrained beam search: terms taken from the reference, term-use rate,
BLEU and speed with and without constraints.

    python benchmarks/terminology.py runs/ens-s1 --split test_2016_flickr --tag m30k

Per sentence, ``k`` terms (k = 1, 2, 3): distinct words of the reference of four letters
or more, drawn with a fixed seed — terms from the reference, as Post & Vilar (2018) drew
their constraints. Term use: the share of terms that occur in the output as whole words
(case-sensitive); plain beam search is scored on the same terms. Speed: sentences per
second, the median of ``--rounds`` rounds, each round timing plain beam search too, so
the ratio compares runs of the same moment. Writes
``benchmarks/results/terminology_<tag>.json``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time

import sacrebleu
from common import MULTI30K, save

from attnmt.inference.translator import Translator


def draw_terms(reference: str, k: int, rng: random.Random) -> list[str]:
    """Up to ``k`` distinct words of ``reference`` of four letters or more, in the order
    they occur there."""
    words = list(dict.fromkeys(w for w in re.findall(r"[^\W\d_]+", reference) if len(w) >= 4))
    chosen = set(rng.sample(words, min(k, len(words))))
    return [w for w in words if w in chosen]


def term_use(outputs: list[str], terms: list[list[str]]) -> float:
    """Percentage of the terms that occur in their output as whole words."""
    found = total = 0
    for out, phrases in zip(outputs, terms, strict=True):
        for term in phrases:
            total += 1
            found += re.search(rf"(?<!\w){re.escape(term)}(?!\w)", out) is not None
    return 100 * found / max(total, 1)


def _timed(fn) -> tuple[list[str], float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--terms", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tag", default="m30k")
    args = parser.parse_args()
    src = (MULTI30K / f"{args.split}.de").read_text().splitlines()
    ref = (MULTI30K / f"{args.split}.en").read_text().splitlines()
    tr = Translator.from_run(args.run)
    terms = {k: [draw_terms(r, k, random.Random(f"{args.seed}-{k}-{i}"))
                 for i, r in enumerate(ref)] for k in args.terms}

    def plain() -> list[str]:
        return [h[0].text for h in tr.translate(src, beam=args.beam)]

    def constrained(k: int):
        return lambda: [h[0].text for h in tr.translate(src, beam=args.beam,
                                                        constraints=terms[k])]

    outputs: dict = {}
    speeds: dict = {"plain": [], **{k: [] for k in args.terms}}
    for _ in range(args.rounds):
        for key, fn in [("plain", plain), *((k, constrained(k)) for k in args.terms)]:
            outputs[key], seconds = _timed(fn)
            speeds[key].append(len(src) / seconds)
    base = statistics.median(speeds["plain"])
    rows = []
    for k in args.terms:
        rows.append({"terms_per_sentence": k, "terms": sum(map(len, terms[k])),
                     "plain": {"term_use": round(term_use(outputs["plain"], terms[k]), 1),
                               "bleu": round(sacrebleu.corpus_bleu(outputs["plain"],
                                                                   [ref]).score, 2)},
                     "constrained": {"term_use": round(term_use(outputs[k], terms[k]), 1),
                                     "bleu": round(sacrebleu.corpus_bleu(outputs[k],
                                                                         [ref]).score, 2),
                                     "sentences_per_s": round(statistics.median(speeds[k]),
                                                              1),
                                     "speed_vs_plain": round(statistics.median(
                                         [c / p for c, p in zip(speeds[k], speeds["plain"],
                                                                strict=True)]), 2)}})
        r = rows[-1]
        print(f"{k} term(s): plain use {r['plain']['term_use']:5.1f}% BLEU "
              f"{r['plain']['bleu']:5.2f} | constrained use {r['constrained']['term_use']:5.1f}%"
              f" BLEU {r['constrained']['bleu']:5.2f}, x{r['constrained']['speed_vs_plain']:.2f}"
              " plain speed")
    save(f"terminology_{args.tag}", {
        "run": args.run, "split": args.split, "beam": args.beam, "seed": args.seed,
        "rounds": args.rounds, "plain_sentences_per_s": round(base, 1), "rows": rows,
        "command": f"python benchmarks/terminology.py {args.run} --split {args.split} "
                   f"--tag {args.tag}"})


if __name__ == "__main__":
    main()
