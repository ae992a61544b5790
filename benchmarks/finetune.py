"""Cheap fine-tuning measured: full fine-tuning against LoRA and a frozen encoder.

A Transformer learns English numbers -> digits, then is adapted to English dates -> ISO
dates by three recipes with the same updates, data and learning-rate schedule:

- ``full``: every weight trainable;
- ``lora``: LoRA adapters (rank 8, alpha 16) on every attention and feed-forward layer,
  everything else frozen (``train.lora``);
- ``frozen-encoder``: the encoder and the embeddings frozen (``train.freeze``).

Each run is its own ``attnmt train`` process with the same threads. Reported per recipe:
trainable parameters, updates per second, memory (the gradients and Adam moments of the
trainable weights, and the process's peak resident memory — which for LoRA includes the
``peft`` library and what it imports), and the
exact-match accuracy (greedy) on the test sets of both tasks after adaptation — the new
task learned, the old one forgotten or kept. The vocabulary is the numbers model's
(fine-tuning keeps it): capital letters and commas of the dates are ``<unk>``.

    python benchmarks/finetune.py [--base-minutes 4] [--steps 1500] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import save

from attnmt.data.synthetic import write_task
from attnmt.inference.translator import Translator

MODEL = {"preset": "transformer-tiny", "dropout": 0.1}
RECIPES = {"full": {}, "lora": {"lora": {"rank": 8, "alpha": 16}},
           "frozen-encoder": {"freeze": ["embeddings", "encoder"]}}


def _train(config: dict, out: Path, threads: int) -> dict:
    """One ``attnmt train`` process; its speed and peak memory from its own log."""
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config))
    if not (out / "checkpoints/finished.json").is_file():      # (a rerun reuses it)
        subprocess.run([sys.executable, "-m", "attnmt.cli", "train", str(path), "--out",
                        str(out), "--set", f"train.threads={threads}"], check=True,
                       stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    last = train[-1]
    return {"updates": last["step"], "seconds": round(last["elapsed"], 1),
            "updates_per_s": round(last["step"] / last["elapsed"], 2),
            "peak_rss_mib": round(max(r.get("peak_rss_mib", 0) for r in train), 1)}


SUFFIX = {"numbers": ("en", "digits"), "dates": ("en", "iso")}


def exact(run: Path, data: Path, n: int) -> float:
    src, tgt = SUFFIX[data.name]
    src = (data / f"test.{src}").read_text().splitlines()[:n]
    ref = (data / f"test.{tgt}").read_text().splitlines()[:n]
    hyps = Translator.from_run(run).translate(src, beam=1)
    return round(100 * sum(h[0].text == r for h, r in zip(hyps, ref)) / len(ref), 2)


def _config(data: Path, **train) -> dict:
    src, tgt = SUFFIX[data.name]
    return {"data": {"dir": str(data), "src": src, "tgt": tgt, "tokenizer": "char"},
            "model": MODEL,
            "train": {"max_tokens": 4096, "lr": 1e-3, "warmup": 200, "label_smoothing": 0.1,
                      "valid_every": 500, "best_metric": "exact", "log_every": 10,
                      "valid_max_sentences": 300, **train},
            "decode": {"beam": 1}}


def trainable(run: Path) -> tuple[int, int]:
    """(total, trainable) parameters, as the run's log line says them."""
    from attnmt.config import load_config
    from attnmt.models import build_for_task
    from attnmt.models.adapters import apply_finetuning, trainable_parameters
    from attnmt.rundir import RunDir

    cfg = load_config(raw=yaml.safe_load((run / "config.yaml").read_text()))
    _, vocabs, _ = RunDir(run).load()
    model = build_for_task("translate", cfg.model, src_vocab=len(vocabs.src),
                           tgt_vocab=len(vocabs.tgt), joint_vocab=vocabs.joint)
    apply_finetuning(model, cfg.train)
    return model.num_parameters(), trainable_parameters(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-minutes", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=1500, help="updates of each adaptation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="finetune-"))
    numbers, dates = work / "numbers", work / "dates"
    write_task(numbers, "numbers", src="en", tgt="digits", n=20000, max_items=3, seed=1)
    write_task(dates, "dates", src="en", tgt="iso", n=20000, max_items=2, seed=2)
    base = work / "base"
    _train(_config(numbers, max_steps=10**6, max_minutes=args.base_minutes,
                   schedule="inverse_sqrt"), base, args.threads)
    rows = {"base": {"numbers": exact(base, numbers, args.n_test),
                     "dates": exact(base, dates, args.n_test)}}
    rows["base"]["parameters"], rows["base"]["trainable"] = trainable(base)
    for name, extra in RECIPES.items():
        run = work / name
        speed = _train(_config(dates, max_steps=args.steps, schedule="cosine",
                               init_from=str(base), **extra), run, args.threads)
        total, train_params = trainable(run)
        # what grows with the trainable weights: their gradients and Adam's two moments
        state_mib = round(train_params * 4 * 3 / 2**20, 2)
        rows[name] = {"parameters": total, "trainable": train_params,
                      "grad_and_adam_mib": state_mib, **speed,
                      "numbers": exact(run, numbers, args.n_test),
                      "dates": exact(run, dates, args.n_test)}
        print(name, rows[name], flush=True)
    print(f"{'recipe':16}{'trainable':>12}{'updates/s':>11}{'grad+Adam MiB':>15}"
          f"{'peak MiB':>10}{'numbers':>9}{'dates':>8}")
    for name, r in rows.items():
        print(f"{name:16}{r['trainable']:>12,}{r.get('updates_per_s', ''):>11}"
              f"{r.get('grad_and_adam_mib', ''):>15}{r.get('peak_rss_mib', ''):>10}"
              f"{r['numbers']:>9}{r['dates']:>8}")
    save("finetune_numbers_dates", {
        "command": "python benchmarks/finetune.py " + " ".join(sys.argv[1:]),
        "base_minutes": args.base_minutes, "steps": args.steps, "threads": args.threads,
        "n_test": args.n_test, "model": MODEL, "recipes": RECIPES, "rows": rows})


if __name__ == "__main__":
    main()
