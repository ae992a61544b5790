"""SentencePiece subword sampling (``data.spm_alpha``) measured on Multi30k validation data.

The shipped ``configs/multi30k_transformer_small.yaml`` trained for the same minutes with
each alpha (0 = the one best segmentation), each run alone in its own process with the
same threads; the best checkpoint of each scored on val (beam 5, sacreBLEU) — val only:
alpha is a setting chosen on val. The number of updates each run made is reported too
(sampling costs time per batch).

    ATTNMT_DATA_DIR=../shared/data/multi30k python benchmarks/spm_alpha.py \\
        --minutes 12 --alphas 0,0.1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import save

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs/multi30k_transformer_small.yaml"


def run(alpha: float, minutes: float, out: Path, threads: int) -> dict:
    if not (out / "checkpoints/finished.json").is_file():
        subprocess.run([sys.executable, "-m", "attnmt.cli", "train", str(CONFIG), "--out",
                        str(out), "--set", f"data.spm_alpha={alpha}", "--set",
                        f"train.max_minutes={minutes}", "--set", f"train.threads={threads}",
                        "--quiet"]
                       + (["--resume"] if (out / "checkpoints/latest.json").is_file() else []),
                       check=True)
    subprocess.run([sys.executable, "-m", "attnmt.cli", "evaluate", str(out), "--split", "val",
                    "--beam", "5"], check=True, stdout=subprocess.DEVNULL)
    score = json.loads((out / "eval/val.beam5.json").read_text())
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["type"] == "valid"]
    steps = max(r["step"] for r in records if r["type"] == "train")
    return {"alpha": alpha, "updates": steps, "val_bleu_beam5": score["bleu"],
            "val_chrf_beam5": score["chrf"], "val_loss": valid[-1]["loss"] if valid else None,
            "val_bleu_greedy": valid[-1].get("bleu") if valid else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--alphas", default="0,0.1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="spm-alpha-"))
    rows = []
    for alpha in (float(a) for a in args.alphas.split(",")):
        rows.append(run(alpha, args.minutes, work / f"alpha-{alpha:g}", args.threads))
        print(json.dumps(rows[-1]), flush=True)
    print(f"{'alpha':>6}{'updates':>9}{'val BLEU (beam 5)':>19}{'val chrF':>10}{'val loss':>10}")
    for r in rows:
        print(f"{r['alpha']:>6}{r['updates']:>9}{r['val_bleu_beam5']:>19.2f}"
              f"{r['val_chrf_beam5']:>10.2f}{r['val_loss']:>10.3f}")
    save("spm_alpha_m30k", {"command": "python benchmarks/spm_alpha.py " + " ".join(sys.argv[1:]),
                            "config": str(CONFIG.relative_to(REPO)), "minutes": args.minutes,
                            "threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
