"""Decoding speed on Multi30k test2016: sentences/s and target tokens/s, with the BLEU.

    python benchmarks/decode_speed.py runs/m30k-tsmall [--repeats 3] [--threads 2]
    python benchmarks/decode_speed.py runs/m30k-tsmall --int8 --ctranslate2 runs/m30k-tsmall-ct2

Greedy and beam 5, batches of 64 sentences sorted by length, model load excluded,
median over repeats. The BLEU of the same output is printed next to the speed, so
speed is never bought with quality silently. ``--ctranslate2 DIR`` times the same
run exported with ``attnmt export ctranslate2`` as well, ``--int8`` the same run with
its Linear layers dynamically quantised to int8 (``attnmt translate --int8``), ``--bf16``
in bfloat16, and ``--stopping current,beam`` beam 5 under other stopping rules
(``decode.stopping``; the run's own rule is always timed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from common import MULTI30K, save


def measure(translate: Callable[[list[str], int], list[str]], src: list[str], refs: list[str],
            tokens: Callable[[str], int], repeats: int, label: str,
            modes: tuple[tuple[str, int], ...] = (("greedy", 1), ("beam5", 5))) -> dict:
    """Time ``translate(src, beam)`` for greedy and beam 5; the median of ``repeats`` runs."""
    from attnmt.metrics import corpus_scores

    rows = {}
    for name, beam in modes:
        times, hyps = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            hyps = translate(src, beam)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        scores = corpus_scores(hyps, refs)
        n_tokens = sum(tokens(h) + 1 for h in hyps)          # + </s>
        rows[name] = {"sentences_per_s": round(len(hyps) / seconds, 1),
                      "tokens_per_s": round(n_tokens / seconds, 1), "bleu": scores["bleu"],
                      "chrf": scores["chrf"], "seconds": [round(t, 2) for t in times]}
        print(f"{label:>12} {name:>7}: {rows[name]['sentences_per_s']:7.1f} sentences/s  "
              f"{rows[name]['tokens_per_s']:8.1f} tokens/s  BLEU {scores['bleu']:.2f}")
    return rows


def decode_attnmt(run: str, split: str, repeats: int, threads: int, precision: str = "fp32",
                  stopping: str | None = None) -> dict:
    """Pure-PyTorch decoding of a run with attnmt's own search, in ``precision`` (fp32, bf16,
    or int8: dynamically quantised Linear layers); ``stopping`` times beam 5 alone under
    that stopping rule instead of the run's."""
    torch.set_num_threads(threads)
    from attnmt.data.corpus import read_parallel
    from attnmt.translator import Translator

    tr = Translator.from_run(run, precision=precision)
    tr.cfg.decode.stopping = stopping or tr.cfg.decode.stopping
    corpus = read_parallel(MULTI30K / f"{split}.{tr.cfg.data.src}",
                           MULTI30K / f"{split}.{tr.cfg.data.tgt}")

    def translate(src: list[str], beam: int) -> list[str]:
        return [h[0].text for h in tr.translate(src, beam=beam, batch_size=64)]

    return measure(translate, corpus.src, corpus.tgt,
                   lambda h: len(tr.vocabs.tgt.encode(h)), repeats,
                   "attnmt" if precision == "fp32" else f"attnmt-{precision}",
                   (("beam5", 5),) if stopping else (("greedy", 1), ("beam5", 5)))


def decode_ctranslate2(model_dir: str, src_lang: str, tgt_lang: str, split: str,
                       repeats: int, threads: int) -> dict:
    """The same kind of run exported to CTranslate2, on its own CPU kernels."""
    from attnmt.data.corpus import read_parallel
    from attnmt.export import CT2Translator

    ct2 = CT2Translator(model_dir, threads=threads)
    corpus = read_parallel(MULTI30K / f"{split}.{src_lang}", MULTI30K / f"{split}.{tgt_lang}")

    def translate(src: list[str], beam: int) -> list[str]:
        return [h[0] for h in ct2.translate(src, beam=beam, batch_size=64)]

    return measure(translate, corpus.src, corpus.tgt,
                   lambda h: len(ct2.vocabs.tgt.encode(h)), repeats, "ctranslate2")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--ctranslate2", default=None, help="an exported CTranslate2 folder")
    ap.add_argument("--int8", action="store_true", help="also time `--int8` (dynamic int8)")
    ap.add_argument("--bf16", action="store_true", help="also time `--bf16` (bfloat16)")
    ap.add_argument("--stopping", default="", help="comma-separated stopping rules to time "
                    "beam 5 under as well (bound, current, beam)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split", default="test_2016_flickr")
    args = ap.parse_args()
    rows = {"attnmt": decode_attnmt(args.run, args.split, args.repeats, args.threads)}
    for precision in ("int8", "bf16"):
        if getattr(args, precision):
            rows[f"attnmt_{precision}"] = decode_attnmt(args.run, args.split, args.repeats,
                                                        args.threads, precision)
    for rule in filter(None, args.stopping.split(",")):
        rows[f"attnmt_stopping_{rule}"] = decode_attnmt(args.run, args.split, args.repeats,
                                                        args.threads, stopping=rule)
    if args.ctranslate2:
        from attnmt.checkpoint import RunDir

        cfg = RunDir(args.run).load_config()
        rows["ctranslate2"] = decode_ctranslate2(args.ctranslate2, cfg.data.src, cfg.data.tgt,
                                                 args.split, args.repeats, args.threads)
    save(f"decode_speed_{args.run.rstrip('/').split('/')[-1]}",
         {"run": args.run, "split": args.split, "threads": args.threads,
          "repeats": args.repeats, **rows})


if __name__ == "__main__":
    main()
