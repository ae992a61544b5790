"""Training throughput on Multi30k de->en: target tokens/s (median after warm-up), peak RSS.

    python benchmarks/train_throughput.py --preset transformer-small --steps 60
    python benchmarks/train_throughput.py --config configs/multi30k_rnn_dot.yaml --steps 60

Runs the real trainer (same code path as `attnmt train`) for a fixed number of
updates with validation off, and reports the median of its per-interval
throughput after the first ``--warmup`` updates.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from common import MULTI30K, save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/multi30k_transformer_small.yaml")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--tag", default="", help="suffix of the results file (a variant's name)")
    args = ap.parse_args()
    os.environ.setdefault("ATTNMT_DATA_DIR", str(MULTI30K))
    from attnmt.config import load_config
    from attnmt.training.loop import train

    overrides = [f"train.max_steps={args.steps}", "train.log_every=5", "train.max_minutes=0",
                 f"train.valid_every={args.steps}", "train.valid_bleu=false", *args.overrides]
    if args.preset:
        overrides.insert(0, f"model.preset={args.preset}")
    cfg = load_config(args.config, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        progress = train(cfg, Path(tmp) / "run", quiet=True)
        records = [json.loads(x) for x in (Path(tmp) / "run/metrics.jsonl").read_text()
                   .splitlines()]
    rates = [r["tokens_per_s"] for r in records
             if r["type"] == "train" and r["step"] > args.warmup]
    rss = max(r["peak_rss_mib"] for r in records if r["type"] == "train")
    name = args.preset or cfg.model.preset or Path(args.config).stem
    result = {"model": name, "config": args.config, "overrides": overrides,
              "steps": progress.step, "tokens_per_s_median": round(statistics.median(rates), 1),
              "tokens_per_s_intervals": [round(x, 1) for x in rates],
              "peak_rss_mib": round(rss)}
    print(f"{name}: {result['tokens_per_s_median']:,.0f} target tokens/s (median of "
          f"{len(rates)} intervals after {args.warmup} updates), peak RSS {rss:,.0f} MiB")
    save(f"train_throughput_{name}{'_' + args.tag if args.tag else ''}", result)


if __name__ == "__main__":
    main()
