"""How long the explainer takes: `attnmt.explain.numbers` on validation sentences of one length.

    python benchmarks/explain_speed.py runs/m30k-tsmall [--tokens 30] [--sentences 5]
    python benchmarks/explain_speed.py runs/align-m30k/runs/rnn-dot --attribution 16,32

For each of the first ``--sentences`` validation sentences with exactly ``--tokens``
source tokens (``</s>`` included), times the numbers of every output word
(``explain``: greedy decoding through ``explain_step`` with every layer and head kept)
and, apart, their conversion to JSON (``to_json`` + ``json.dumps``, what ``POST
/explain`` adds), median of ``--repeats`` after one warm-up; with the plain greedy
translation of the same sentence as the baseline measured in the same run. With
``--attribution STEPS``, also the explanation with attributions (``attnmt explain
--attribution``: Captum's two gradient methods and masking beside the attention) at each
number of integrated-gradient steps. Writes ``results/explain_speed_<run>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from common import MULTI30K, save


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def _measure(tr, text: str, tokens: int, repeats: int, explain, to_json,
             ig_steps: list[int]) -> dict:
    from attnmt.explain.attribution import attribute

    data = explain(tr, text)
    row = {"source_tokens": tokens, "output_words": len(data["steps"]),
           "greedy_ms": _median_ms(lambda: tr.translate([text], beam=1), repeats),
           "explain_ms": _median_ms(lambda: explain(tr, text), repeats),
           "json_ms": _median_ms(lambda: json.dumps(to_json(data)), repeats),
           "json_mb": len(json.dumps(to_json(data))) / 1e6}
    def with_attribution(n: int) -> dict:         # what `attnmt explain --attribution` runs
        shown = explain(tr, text)
        return attribute(tr, text, target_ids=shown["tgt_ids"], ig_steps=n)

    for n in ig_steps:
        row[f"attribution_{n}_ms"] = _median_ms(lambda n=n: with_attribution(n), repeats)
        row[f"ig_delta_{n}"] = attribute(tr, text, target_ids=data["tgt_ids"],
                                         ig_steps=n)["ig_delta"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--tokens", type=int, default=30)
    ap.add_argument("--sentences", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attribution", default="", help="integrated-gradient steps to time "
                    "explain --attribution at, e.g. 16,32")
    args = ap.parse_args()
    ig_steps = [int(x) for x in args.attribution.split(",") if x]
    torch.set_num_threads(args.threads)
    from attnmt.data.corpus import read_lines
    from attnmt.explain.numbers import explain, to_json
    from attnmt.inference.translator import Translator

    tr = Translator.from_run(args.run)
    lines = read_lines(MULTI30K / f"val.{tr.cfg.data.src}")
    chosen = [s for s in lines if len(tr.encode_source(s)) == args.tokens][: args.sentences]
    rows = [_measure(tr, text, args.tokens, args.repeats, explain, to_json, ig_steps)
            for text in chosen]
    print(f"{'words':>5} {'greedy ms':>10} {'explain ms':>11} {'ratio':>6} {'json ms':>8} "
          f"{'json MB':>8}")
    for r in rows:
        print(f"{r['output_words']:>5} {r['greedy_ms']:>10.1f} {r['explain_ms']:>11.1f} "
              f"{r['explain_ms'] / r['greedy_ms']:>6.2f} {r['json_ms']:>8.1f} {r['json_mb']:>8.2f}")
    keys = ["greedy_ms", "explain_ms", "json_ms", "json_mb",
            *(f"{k}_{n}{u}" for n in ig_steps for k, u in (("attribution", "_ms"),
                                                            ("ig_delta", "")))]
    summary = {k: statistics.median(r[k] for r in rows) for k in keys}
    print("median: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    save(f"explain_speed_{Path(args.run).name}",
         {"run": args.run, "command": "python benchmarks/explain_speed.py " + " ".join(
             sys.argv[1:]),
          "threads": args.threads, "sentences": rows, "median": summary})


if __name__ == "__main__":
    main()
