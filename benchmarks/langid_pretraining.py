"""Language identification with and without masked-LM pre-training (the BERT recipe in miniature).

    attnmt data langid --from ../shared/data/multi30k --out data/langid
    attnmt train configs/langid_encoder.yaml --out runs/langid --set train.max_minutes=3
    attnmt evaluate runs/langid --split test
    attnmt train configs/mlm_multi30k.yaml --out runs/mlm --set train.max_minutes=3
    attnmt train configs/langid_encoder.yaml --out runs/langid-ft --set train.max_minutes=3 \\
        --set train.init_from=runs/mlm
    attnmt evaluate runs/langid-ft --split test
    python benchmarks/langid_pretraining.py runs/langid runs/langid-ft --mlm runs/mlm

Reads the runs' own metrics.jsonl and eval/test.json: the validation accuracy curve
against updates and seconds, the test accuracy/macro-F1/confusion, and the MLM
run's last validation perplexity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import save


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def summarise(run: Path) -> dict:
    rows = records(run)
    train = [r for r in rows if r["type"] == "train"]
    valid = [{k: round(r[k], 4) for k in ("step", "elapsed", "loss", "accuracy")}
             for r in rows if r["type"] == "valid"]
    test = json.loads((run / "eval/test.json").read_text())
    return {"run": str(run), "steps": valid[-1]["step"] if valid else 0,
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in train)), "valid": valid,
            "test": {k: test[k] for k in ("n", "accuracy", "macro_f1", "labels", "confusion")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scratch", type=Path)
    ap.add_argument("finetuned", type=Path)
    ap.add_argument("--mlm", type=Path, required=True)
    args = ap.parse_args()
    mlm_valid = [r for r in records(args.mlm) if r["type"] == "valid"][-1]
    result = {"scratch": summarise(args.scratch), "mlm_finetuned": summarise(args.finetuned),
              "mlm": {"run": str(args.mlm), "steps": mlm_valid["step"],
                      "elapsed": round(mlm_valid["elapsed"], 1),
                      "valid_ppl": round(mlm_valid["ppl"], 2)}}
    print(f"MLM pre-training: {mlm_valid['step']} updates, validation ppl "
          f"{mlm_valid['ppl']:.1f}")
    print("| classifier | updates | val acc % by update | test acc % | test macro-F1 |")
    print("|---|---|---|---|---|")
    for name in ("scratch", "mlm_finetuned"):
        r = result[name]
        curve = ", ".join(f"{v['step']}: {v['accuracy']:.2f}" for v in r["valid"])
        print(f"| {name} | {r['steps']} | {curve} | {r['test']['accuracy']:.2f} | "
              f"{r['test']['macro_f1']:.2f} |")
    save("langid_pretraining", result)


if __name__ == "__main__":
    main()
