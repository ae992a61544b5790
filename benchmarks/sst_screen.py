"""The dev screen behind the SST learning curve's settings: pooling and peak rate of each arm.

    python benchmarks/sst_screen.py --mlm runs/mlm-sst

SST-2, 1,000 labelled sentences (the curve's sample for seed 1), 167 updates (the curve's
budget at that size), seed 1, one thread per run, two runs at a time. Each setting's best
accuracy on SST's dev set (never test) is what ``benchmarks/sst_curve.py``'s
``--scratch-set`` / ``--pretrained-set`` were chosen by. Finished runs are reused. Writes
``benchmarks/results/sst_screen.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import save
from sst_curve import subset

ROOT = Path(__file__).resolve().parents[1]
SIZE, SEED, STEPS = 1000, 1, 167
# (arm, pooling, peak rate); the config's own are cls and 5e-4
SETTINGS = [("scratch", "cls", 5e-4), ("scratch", "mean", 5e-4),
            ("pretrained", "cls", 5e-4), ("pretrained", "cls", 1e-4),
            ("pretrained", "mean", 5e-4), ("pretrained", "mean", 2e-4),
            ("pretrained", "mean", 1e-4)]


def run(out: Path, split: str, arm: str, pooling: str, lr: float, mlm: str) -> dict:
    """Train one setting unless it finished; its best dev accuracy."""
    latest = out / "checkpoints/latest.json"
    if not latest.is_file() or json.loads(latest.read_text())["step"] < STEPS:
        sets = [f"data.train={split}", f"train.seed={SEED}", f"train.max_steps={STEPS}",
                f"train.valid_every={STEPS // 10}", "train.threads=1",
                f"model.pooling={pooling}", f"train.lr={lr}"]
        if arm == "pretrained":
            sets.append(f"train.init_from={mlm}")
        subprocess.run([sys.executable, "-m", "attnmt.cli", "train",
                        str(ROOT / "configs/sst2_encoder.yaml"), "--out", str(out), "--quiet",
                        *(x for s in sets for x in ("--set", s))], check=True)
    valid = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(r["accuracy"] for r in valid if r["type"] == "valid")
    return {"arm": arm, "pooling": pooling, "lr": lr, "dev_accuracy": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlm", required=True, help="the masked-LM run to fine-tune from")
    ap.add_argument("--data", type=Path, default=ROOT / "data/sst")
    ap.add_argument("--out", type=Path, default=ROOT / "runs/sst-screen")
    args = ap.parse_args()
    split = subset(args.data / "sst2", SIZE, SEED)
    with ThreadPoolExecutor(2) as pool:
        rows = list(pool.map(lambda s: run(args.out / f"{s[0]}-{s[1]}-{s[2]:g}", split, *s,
                                           args.mlm), SETTINGS))
    for r in rows:
        print(f"{r['arm']:>10} {r['pooling']:>4} lr {r['lr']:g}: dev {r['dev_accuracy']:.2f}")
    save("sst_screen", {"task": "sst2", "labelled": SIZE, "seed": SEED, "updates": STEPS,
                        "mlm": args.mlm, "rows": rows,
                        "command": f"python benchmarks/sst_screen.py --mlm {args.mlm}"})


if __name__ == "__main__":
    main()
