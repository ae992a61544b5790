"""Where decoding time goes, per batch size: torch.profiler over attnmt's search on test2016.

    python benchmarks/decode_profile.py runs/m30k-tsmall [--beam 1] [--batch-sizes 1,4,16,64]

For each batch size it decodes the same sentences and reports sentences/s, the number of
decoder steps and the time per step, split into the model's ``decode_step`` (the
network), the encoder with the first state, and the rest (search's own work on the host:
scores, the choice of tokens, finished sentences leaving the batch). It prints the
operators with the most CPU time (self time, so a parent is not counted with its
children) and writes ``results/decode_profile_<run>.json``. The profiler slows
Python-heavy code more than kernels: read it for proportions, and confirm every change
with ``decode_speed.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from common import MULTI30K, save


@contextmanager
def timed_calls(model, names: tuple[str, ...]):
    """Wrap ``model``'s methods ``names`` so that their calls are counted and timed; yields
    {name: [count, seconds]}."""
    spent = {name: [0, 0.0] for name in names}
    originals = {name: getattr(model, name) for name in names}

    def wrap(name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name][0] += 1
            spent[name][1] += time.perf_counter() - start
            return out
        return timed

    for name, fn in originals.items():
        setattr(model, name, wrap(name, fn))
    try:
        yield spent
    finally:
        for name in names:
            delattr(model, name)            # the class's method shows through again


def split_time(tr, src: list[str], beam: int, batch: int, repeats: int) -> dict:
    """Sentences/s and per-step milliseconds of model and search, median of ``repeats``."""
    runs = []
    for _ in range(repeats):
        with timed_calls(tr.model, ("encode", "init_state", "decode_step")) as spent:
            start = time.perf_counter()
            tr.translate(src, beam=beam, batch_size=batch)
            wall = time.perf_counter() - start
        steps, step_s = spent["decode_step"]
        start_s = spent["encode"][1] + spent["init_state"][1]
        runs.append({"wall_s": wall, "steps": steps, "model_step_ms": 1000 * step_s / steps,
                     "search_step_ms": 1000 * (wall - step_s - start_s) / steps,
                     "encode_share": start_s / wall})
    best = min(runs, key=lambda r: r["wall_s"])
    wall = statistics.median(r["wall_s"] for r in runs)
    return {"sentences_per_s": round(len(src) / wall, 1), "steps": best["steps"],
            "model_step_ms": round(statistics.median(r["model_step_ms"] for r in runs), 3),
            "search_step_ms": round(statistics.median(r["search_step_ms"] for r in runs), 3),
            "encode_share": round(statistics.median(r["encode_share"] for r in runs), 3)}


def top_operators(tr, src: list[str], beam: int, batch: int, rows: int) -> list[dict]:
    """The ``rows`` operators with the most self CPU time, with their share of it."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        tr.translate(src, beam=beam, batch_size=batch)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "calls": e.count, "self_share": round(e.self_cpu_time_total / total, 3)}
            for e in events[:rows]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--batch-sizes", default="1,4,16,64")
    ap.add_argument("--sentences", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from attnmt.data.corpus import read_lines
    from attnmt.inference.translator import Translator

    tr = Translator.from_run(args.run)
    src = read_lines(MULTI30K / f"test_2016_flickr.{tr.cfg.data.src}")[: args.sentences]
    tr.translate(src[:64], beam=args.beam, batch_size=64)                 # warm up
    table = {}
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        row = split_time(tr, src, args.beam, batch, args.repeats)
        row["top_operators"] = top_operators(tr, src, args.beam, batch, args.rows)
        table[str(batch)] = row
        print(f"batch {batch:>3}: {row['sentences_per_s']:7.1f} sentences/s, "
              f"{row['steps']} steps, per step {row['model_step_ms']:.3f} ms model + "
              f"{row['search_step_ms']:.3f} ms search; encoder {row['encode_share']:.1%}")
        for op in row["top_operators"]:
            print(f"    {op['op']:<42} {op['calls']:>8} calls  {op['self_share']:6.1%}")
    save(f"decode_profile_{Path(args.run).name}",
         {"run": args.run, "beam": args.beam, "sentences": len(src), "threads": args.threads,
          "repeats": args.repeats, "batches": table})


if __name__ == "__main__":
    main()
