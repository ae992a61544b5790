"""Repetition and coverage controls on validation data: BLEU, repeated words, output length
and speed for each setting of ``no_repeat_ngram`` and of GNMT's coverage penalty.

    python benchmarks/repetition.py runs/ens-s1 --tag m30k

One setting changes at a time against plain beam search (beam 5): no repeated n-grams of
size 2, 3 or 4; a coverage weight of 0.1, 0.2 or 0.4 (Wu et al. 2016 tuned theirs in
0–0.4). Scored on the validation split only, where settings are chosen. Repeated words: the
share of outputs in which some word bigram occurs twice (the references' own share is
recorded beside it: English repeats "in a" and "a man" too). Length: sacreBLEU's
hypothesis/reference length ratio (under-translation lowers it). Speed: sentences per
second, each setting timed against plain beam in the same round, median of ``--rounds``
ratios. Writes ``benchmarks/results/repetition_<tag>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import sacrebleu
from common import MULTI30K, save

from attnmt.inference.translator import Translator

SETTINGS = [("plain", {}),
            *((f"no_repeat_ngram {n}", {"no_repeat_ngram": n}) for n in (2, 3, 4)),
            *((f"coverage {w}", {"coverage": w}) for w in (0.1, 0.2, 0.4))]


def repeats(text: str) -> bool:
    """Whether some word bigram occurs twice in ``text``."""
    words = text.lower().split()
    bigrams = list(zip(words, words[1:]))
    return len(set(bigrams)) < len(bigrams)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--split", default="val")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tag", default="m30k")
    args = parser.parse_args()
    src = (MULTI30K / f"{args.split}.de").read_text().splitlines()
    ref = (MULTI30K / f"{args.split}.en").read_text().splitlines()
    tr = Translator.from_run(args.run)
    outputs: dict[str, list[str]] = {}
    speeds: dict[str, list[float]] = {name: [] for name, _ in SETTINGS}
    for _ in range(args.rounds):
        for name, options in SETTINGS:
            start = time.perf_counter()
            outputs[name] = [h[0].text for h in tr.translate(src, beam=args.beam, **options)]
            speeds[name].append(len(src) / (time.perf_counter() - start))
    rows = []
    for name, _ in SETTINGS:
        bleu = sacrebleu.corpus_bleu(outputs[name], [ref])
        rows.append({"setting": name, "bleu": round(bleu.score, 2),
                     "length_ratio": round(bleu.sys_len / bleu.ref_len, 3),
                     "repeating_outputs": round(100 * sum(map(repeats, outputs[name]))
                                                / len(src), 1),
                     "changed_outputs": sum(a != b for a, b in zip(outputs[name],
                                                                   outputs["plain"],
                                                                   strict=True)),
                     "speed_vs_plain": round(statistics.median(
                         [s / p for s, p in zip(speeds[name], speeds["plain"], strict=True)]),
                         2)})
        r = rows[-1]
        print(f"{name:18} BLEU {r['bleu']:5.2f}  length {r['length_ratio']:.3f}  repeating "
              f"{r['repeating_outputs']:4.1f}%  changed {r['changed_outputs']:4d}  "
              f"x{r['speed_vs_plain']:.2f}")
    save(f"repetition_{args.tag}", {
        "run": args.run, "split": args.split, "beam": args.beam, "rounds": args.rounds,
        "sentences": len(src), "reference_repeating": round(100 * sum(map(repeats, ref))
                                                            / len(ref), 1),
        "plain_sentences_per_s": round(statistics.median(
            speeds["plain"]), 1), "rows": rows,
        "command": f"python benchmarks/repetition.py {args.run} --split {args.split} "
                   f"--tag {args.tag}"})


if __name__ == "__main__":
    main()
