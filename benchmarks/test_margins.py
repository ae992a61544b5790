"""The spread behind the suite's thresholds: training-dependent results over seeds x kernels.

    python benchmarks/test_margins.py [--seeds 4] [--settings native,avx-compat,generic]

A tiny training run follows another trajectory on another CPU: oneDNN, MKL and ATen pick
other kernels (AMX, AVX-512, AVX2, SSE) with other summation orders. This script trains
what the tests train — the copy task of every family, the reverse-task Transformer that
most tests share (``conftest.trained``), the bf16/fp32 pair, the classifier and the
language model — under several kernel settings (each in its own process, since the
variables are read when torch loads) and several seeds (another seed stands for another
trajectory), and prints per quantity the lowest and highest value seen. The tests'
thresholds sit below the lowest value by more than the measured spread; the comment
beside each threshold cites this file's results (``benchmarks/results/test_margins.json``).

The kernel settings are the same as ``make test-portable``'s (``tests/kernel_settings.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import save

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from kernel_settings import SETTINGS  # noqa: E402

PROBES = {"a b c d": "d c b a", "a b c": "c b a"}   # what tests expect the shared run to say


def copy_task(seed: int) -> dict:
    from test_models import COPY_CASES, copy_accuracy

    return {f"copy {preset} accuracy": copy_accuracy(preset, steps, lr, seed)
            for preset, steps, lr, _ in COPY_CASES}


def reverse_run(seed: int, tmp: Path) -> dict:
    """The shared tiny Transformer (conftest.trained) with another seed, and what the tests
    read from it: validation exact match, the best update, test exact, probe sentences,
    and agreement of int8 and bf16 inference with float32, and its attention's AER."""
    from conftest import TINY_TRANSFORMER, TRAINED, config

    from attnmt.config import load_config
    from attnmt.data.synthetic import write_task
    from attnmt.inference.evaluate import evaluate
    from attnmt.inference.translator import Translator
    from attnmt.training.loop import train

    task = tmp / "reverse"
    write_task(task, "reverse", n=3000, n_valid=50, n_test=60, min_items=2, max_items=7, seed=1)
    run = tmp / f"run{seed}"
    train(load_config(config(task, tmp / "c.yaml", TINY_TRANSFORMER, **TRAINED, seed=seed)),
          run, quiet=True)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    valid = {r["step"]: r["exact"] for r in records if r["type"] == "valid"}
    out = {f"reverse valid exact @{step}": exact for step, exact in valid.items()}
    out["reverse best step is the last"] = float(max(valid, key=valid.get) == max(valid))
    out["reverse test exact % (60 lines), beam 2"] = evaluate(run, "test", beam=2,
                                                              log=lambda *_: 0)["exact"]
    fp32 = Translator.from_run(run)
    for beam in (1, 3):
        got = [h[0].text for h in fp32.translate(list(PROBES), beam=beam)]
        out[f"reverse probes right (of {len(PROBES)}), beam {beam}"] = sum(
            g == want for g, want in zip(got, PROBES.values(), strict=True))
    src = (task / "test.src").read_text().splitlines()
    base = {b: [h[0].text for h in fp32.translate(src, beam=b)] for b in (1, 3)}
    for precision, beams in (("int8", (1,)), ("bf16", (1, 3))):
        other = Translator.from_run(run, precision=precision)
        for b in beams:
            hyps = [h[0].text for h in other.translate(src, beam=b)]
            out[f"reverse {precision} = fp32 (share), beam {b}"] = sum(
                x == y for x, y in zip(hyps, base[b], strict=True)) / len(src)
    out["reverse first 5 test lines right, beam 3"] = sum(
        h.split() == s.split()[::-1] for h, s in zip(base[3][:5], src[:5], strict=True))
    return {**out, **_alignment(fp32, task, src)}


def _alignment(translator, task: Path, src: list[str]) -> dict:
    """AER of the shared run's attention against the reverse task's gold (the
    anti-diagonal), forced to the references: the mean, the best layer and the best head."""
    from attnmt.inference.alignment import head_scores, read_gold

    tgt = (task / "test.tgt").read_text().splitlines()
    scores = head_scores(translator, src, tgt, read_gold(str(task / "test.align"), src, tgt))
    return {"reverse AER, mean attention": scores["mean"]["aer"],
            "reverse AER, best layer": min(x["aer"] for x in scores["layers"]),
            "reverse AER, best head": min(x["aer"] for x in scores["heads"])}


def bf16_pair(seed: int, tmp: Path) -> dict:
    """test_bf16_autocast_training_learns_as_well_as_float32 with another seed."""
    from conftest import TINY_TRANSFORMER, config
    from test_train_cli import BF16_PAIR

    from attnmt.config import load_config
    from attnmt.training.loop import train

    task = tmp / "reverse"
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = config(task, tmp / f"{precision}.yaml", TINY_TRANSFORMER, **BF16_PAIR,
                     precision=precision, seed=seed)
        train(load_config(cfg), tmp / f"{precision}{seed}", quiet=True)
        records = [json.loads(x) for x in (tmp / f"{precision}{seed}" / "metrics.jsonl")
                   .read_text().splitlines()]
        losses[precision] = [r["loss"] for r in records if r["type"] == "valid"][-1]
    return {"bf16 pair fp32 loss": losses["fp32"],
            "bf16 pair |bf16 - fp32| / fp32": abs(losses["bf16"] - losses["fp32"]) / losses["fp32"]}


def descendants(seed: int, tmp: Path) -> dict:
    from test_descendants import cfg, write_pattern, write_toy

    from attnmt.api import Classifier, LanguageModel
    from attnmt.training.loop import train

    toy, pattern = write_toy(_fresh(tmp / "toy")), write_pattern(_fresh(tmp / "pattern"))
    train(cfg(toy, "classify", max_steps=200, best_metric="accuracy", seed=seed),
          tmp / f"clf{seed}", quiet=True)
    accuracy = Classifier(tmp / f"clf{seed}").evaluate("test")["accuracy"]
    train(cfg(pattern, "lm", max_steps=150, seed=seed), tmp / f"lm{seed}", quiet=True)
    lm = LanguageModel(tmp / f"lm{seed}")
    return {"classifier test accuracy": accuracy,
            "lm test perplexity": lm.perplexity("test")["perplexity"],
            "lm greedy continues the cycle": float(
                lm.generate("a b c a", max_new_tokens=8, temperature=0)
                .startswith("a b c a b c a b"))}


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def measure(seeds: list[int]) -> dict[str, list[float]]:
    """Every quantity for every seed, in this process (its kernel setting). Seed index 0 is
    the tests' own: ``torch.manual_seed(0)`` for the copy task, ``train.seed`` 1 (the
    default) for the runs trained through the config."""
    values: dict[str, list[float]] = {}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["ATTNMT_CACHE"] = tmp
            row = {**copy_task(seed), **reverse_run(seed + 1, Path(tmp)),
                   **bf16_pair(seed + 1, Path(tmp)), **descendants(seed + 1, Path(tmp))}
        for key, value in row.items():
            values.setdefault(key, []).append(float(value))
        print(f"  seed {seed} done", file=sys.stderr, flush=True)
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    if args.child:
        print(json.dumps(measure(seeds)))
        return
    by_setting = {}
    for name in args.settings.split(","):
        print(f"{name}: {SETTINGS[name] or 'the CPU as it is'}", file=sys.stderr, flush=True)
        r = subprocess.run([sys.executable, __file__, "--child", "--seeds", str(args.seeds)],
                           env={**os.environ, **SETTINGS[name]}, capture_output=True,
                           text=True, check=False)
        if r.returncode:
            sys.exit(f"{name} failed:\n{r.stderr}")
        by_setting[name] = json.loads(r.stdout.strip().splitlines()[-1])
    table = _table(by_setting)
    print(table)
    save("test_margins", {"command": "python benchmarks/test_margins.py "
                                     f"--seeds {args.seeds} --settings {args.settings}",
                          "seeds": seeds, "settings": {k: SETTINGS[k] for k in by_setting},
                          "values": by_setting, "table": table})


def _table(by_setting: dict[str, dict[str, list[float]]]) -> str:
    names = list(by_setting)
    keys = list(next(iter(by_setting.values())))
    lines = ["| quantity | " + " | ".join(f"{n} min..max" for n in names) + " | all min..max |",
             "|---|" + "---|" * (len(names) + 1)]
    for key in keys:
        cells = [f"{min(by_setting[n][key]):.4g}..{max(by_setting[n][key]):.4g}" for n in names]
        every = [v for n in names for v in by_setting[n][key]]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {min(every):.4g}..{max(every):.4g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
