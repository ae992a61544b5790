"""Decoding speed on Multi30k test2016: sentences/s and target tokens/s, with the BLEU.

    python benchmarks/decode_speed.py runs/m30k-tsmall [--repeats 3] [--threads 2]

Greedy and beam 5, batches of 64 sentences sorted by length, model load excluded,
median over repeats. The BLEU of the same output is printed next to the speed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import MULTI30K, save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split", default="test_2016_flickr")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from attnmt.data.corpus import read_parallel
    from attnmt.metrics import corpus_scores
    from attnmt.translator import Translator

    tr = Translator.from_run(args.run)
    corpus = read_parallel(MULTI30K / f"{args.split}.{tr.cfg.data.src}",
                           MULTI30K / f"{args.split}.{tr.cfg.data.tgt}")
    rows = {}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        times, hyps = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = tr.translate(corpus.src, beam=beam, batch_size=64)
            times.append(time.perf_counter() - start)
            hyps = [h[0] for h in out]
        seconds = statistics.median(times)
        tokens = sum(len(h.tokens) + 1 for h in hyps)
        bleu = corpus_scores([h.text for h in hyps], corpus.tgt)
        rows[name] = {"sentences_per_s": round(len(hyps) / seconds, 1),
                      "tokens_per_s": round(tokens / seconds, 1), "bleu": bleu["bleu"],
                      "chrf": bleu["chrf"], "seconds": [round(t, 2) for t in times]}
        print(f"{name:>7}: {rows[name]['sentences_per_s']:7.1f} sentences/s  "
              f"{rows[name]['tokens_per_s']:8.1f} tokens/s  BLEU {bleu['bleu']:.2f}")
    save(f"decode_speed_{args.run.rstrip('/').split('/')[-1]}",
         {"run": args.run, "split": args.split, "threads": args.threads,
          "repeats": args.repeats, **rows})


if __name__ == "__main__":
    main()
