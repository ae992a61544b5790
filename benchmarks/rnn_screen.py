"""The val screen behind the recurrent recipe of ``studies/multi30k_deen.yaml``.

    ATTNMT_DATA_DIR=../shared/data/multi30k python benchmarks/rnn_screen.py

Luong dot attention (``configs/multi30k_rnn_dot.yaml``) on Multi30k de->en, one setting
per run, one run after another (run it alone):

- the precision probe: one minute of training each, float32 against bf16 autocast, for
  rnn-dot and the fixed-context LSTM; the updates made in that minute say which precision
  is faster for the recurrent models on this CPU;
- the recipe screen: an 8-minute budget each (the schedule is the 8 minutes'), batch size
  and schedule as in the config (4,096 tokens, plateau) against the Transformer's levers
  (smaller batches, a linear decay to zero over the budget); validation greedy BLEU on all
  of val every few hundred updates (on the clock, like the study's).

Finished runs are reused. Writes ``benchmarks/results/rnn_screen.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import save

ROOT = Path(__file__).resolve().parents[1]
DOT, LSTM = "configs/multi30k_rnn_dot.yaml", "configs/multi30k_seq2seq_lstm.yaml"
# (name, config, minutes, settings on top of the config)
PROBES = [(f"{arch}-{prec}", cfg, 1, ["train.max_tokens=1024", "train.schedule=linear",
                                      "train.valid_every=100000", f"train.precision={prec}"])
          for arch, cfg in (("rnn-dot", DOT), ("seq2seq-lstm", LSTM))
          for prec in ("fp32", "bf16")]
SCREENS = [("dot-4096-plateau", DOT, 8, ["train.max_tokens=4096", "train.valid_every=100"]),
           ("dot-1024-linear", DOT, 8, ["train.max_tokens=1024", "train.schedule=linear",
                                         "train.valid_every=400"]),
           ("dot-2048-linear", DOT, 8, ["train.max_tokens=2048", "train.schedule=linear",
                                         "train.valid_every=200"]),
           ("dot-4096-linear", DOT, 8, ["train.max_tokens=4096", "train.schedule=linear",
                                         "train.valid_every=100"])]


def run(out: Path, config: str, minutes: float, settings: list[str]) -> dict:
    """Train one setting unless it finished; its updates, rate and validation curve."""
    if not (out / "checkpoints/finished.json").is_file():
        sets = [f"train.max_minutes={minutes:g}", "train.valid_max_sentences=0", *settings]
        subprocess.run([sys.executable, "-m", "attnmt.cli", "train", str(ROOT / config),
                        "--out", str(out), "--quiet", *(x for s in sets for x in ("--set", s))],
                       check=True)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    finished = json.loads((out / "checkpoints/finished.json").read_text())
    valid = [{"step": r["step"], "minutes": round(r["elapsed"] / 60, 2), "bleu": r["bleu"]}
             for r in records if r["type"] == "valid"]
    return {"config": config, "minutes": minutes, "settings": settings,
            "updates": finished["step"],
            "tokens_per_s": round(finished["tokens"] / finished["elapsed"], 1),
            "valid_greedy": valid, "final_bleu": valid[-1]["bleu"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs/rnn-screen")
    args = ap.parse_args()
    rows = {}
    for part, settings in (("probe", PROBES), ("screen", SCREENS)):
        for name, config, minutes, sets in settings:
            rows[name] = {"part": part, **run(args.out / part / name, config, minutes, sets)}
            print(f"{name:>20}: {rows[name]['updates']:5d} updates in {minutes:g} min, "
                  f"val greedy BLEU {rows[name]['final_bleu']:.2f}")
    save("rnn_screen", {"rows": rows, "command": "python benchmarks/rnn_screen.py"})


if __name__ == "__main__":
    main()
