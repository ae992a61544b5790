"""Summarise a finished run directory: throughput, memory, validation curve, evaluations.

    attnmt train configs/multi30k_transformer_small.yaml --out runs/m30k-tsmall
    attnmt evaluate runs/m30k-tsmall --split test --beam 5      # (and --beam 1, --split val)
    python benchmarks/run_summary.py runs/m30k-tsmall

The numbers come from the run's own metrics.jsonl and eval/*.json: the median of
the logged training-throughput intervals (after the first), the peak RSS the
trainer logged, and every evaluation present.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    args = ap.parse_args()
    run = Path(args.run)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    rates = [r["tokens_per_s"] for r in train if r["step"] > 1]
    valid = [{k: r[k] for k in ("step", "elapsed", "bleu", "chrf", "loss") if k in r}
             for r in records if r["type"] == "valid"]
    evals = {p.stem: {k: v for k, v in json.loads(p.read_text()).items()
                      if k in ("split", "beam", "bleu", "chrf", "sentences_per_s", "n",
                               "bleu_signature", "by_length")}
             for p in sorted((run / "eval").glob("*.json"))}
    summary = {"run": str(run), "steps": max((r["step"] for r in records), default=0),
               "train_minutes": round(train[-1]["elapsed"] / 60, 1) if train else 0,
               "tokens_per_s_median": round(statistics.median(rates)) if rates else None,
               "peak_rss_mib": round(max(r.get("peak_rss_mib", 0) for r in train)),
               "valid": valid, "eval": evals}
    print(f"{run}: {summary['steps']} steps, median {summary['tokens_per_s_median']} target "
          f"tokens/s, peak RSS {summary['peak_rss_mib']} MiB")
    for name, e in evals.items():
        print(f"  {name}: BLEU {e['bleu']:.2f} chrF {e['chrf']:.2f}")
    save(f"run_{run.name}", summary)


if __name__ == "__main__":
    main()
