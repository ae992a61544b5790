"""Where one training update's time goes: data, forward + loss, backward, clipping, optimizer.

    python benchmarks/train_profile.py [--steps 30] [--set KEY=VALUE ...] [--ops 8]

Builds the real trainer for the shipped transformer-small config (bf16 autocast, as it
trains) and runs ``--steps`` updates the way ``Trainer._update`` does, timing each phase
(on a CPU every op is synchronous, so wall-clock per phase is exact); the first
``--warmup`` updates are dropped. The optimizer is timed three ways on the same gradients:
PyTorch's default AdamW (``foreach``), ``fused=True`` and the per-parameter loop, so the
saving of a fused step is measured, not assumed. ``--ops N`` also runs N updates under
torch.profiler and sorts their operators' self CPU time into kinds (matrix products,
attention, layer norms, the loss, the optimizer, the rest), with the matrix products'
FLOP rate. Writes ``results/train_profile.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import MULTI30K, save


def phases(trainer, steps: int, warmup: int, compiled: bool = False) -> dict[str, float]:
    """Median milliseconds per phase over ``steps`` updates after ``warmup``; with
    ``compiled``, the forward runs through ``torch.compile(dynamic=True)`` (every batch has
    its own shape) and the first update, which compiles, is reported as ``first update``."""
    cfg, model, task = trainer.cfg.train, trainer.model, trainer.task
    forward_model = torch.compile(model, dynamic=True) if compiled else model
    first = 0.0
    times: dict[str, list[float]] = {k: [] for k in
                                     ("data", "forward+loss", "backward", "clip", "optimizer")}
    model.train()
    for step in range(steps + warmup):
        marks = [time.perf_counter()]
        group = trainer._next_group()
        batches = [task.train.batch(ids) for ids in group]
        marks.append(time.perf_counter())
        total = sum(task.units(task.train, ids) for ids in group)
        forward = backward = 0.0
        for batch in batches:
            t0 = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=trainer.bf16):
                loss = task.loss(forward_model, batch, cfg.label_smoothing)
            t1 = time.perf_counter()
            (loss / total).backward()
            forward, backward = forward + t1 - t0, backward + time.perf_counter() - t1
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        t3 = time.perf_counter()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        first = first or 1000 * (t4 - marks[0])
        if step >= warmup:
            for key, value in (("data", marks[1] - marks[0]), ("forward+loss", forward),
                               ("backward", backward), ("clip", t3 - t2),
                               ("optimizer", t4 - t3)):
                times[key].append(1000 * value)
    out = {k: round(statistics.median(v), 1) for k, v in times.items()}
    out["mean update"] = round(sum(map(sum, zip(*times.values()))) / steps, 1)
    return {**out, "first update": round(first, 1)} if compiled else out


KINDS = (("attention", ("scaled_dot_product", "flash_attention")),
         ("matrix products", ("addmm", "::mm", "bmm", "matmul", "linear")),
         ("layer norm", ("layer_norm",)), ("loss", ("log_softmax", "nll_loss", "cross_entropy")),
         ("optimizer", ("adam", "_foreach", "_fused")),
         ("copies and casts", ("_to_copy", "::to", "copy_")))


def kind_of(op: str) -> str:
    """The kind of a profiler event's operator name (see ``KINDS``)."""
    name = op.lower()
    return next((kind for kind, keys in KINDS if any(k in name for k in keys)), "other")


def op_profile(trainer, updates: int) -> dict:
    """Self CPU time of ``updates`` updates by kind of operator, and the matrix products'
    achieved GFLOP/s (the profiler counts their FLOPs)."""
    phases(trainer, 2, 1)                                   # warm the allocator and caches
    acts = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=acts, with_flops=True) as prof:
        phases(trainer, updates, 0)
    by_kind: dict[str, float] = {}
    flops = matmul_us = 0.0
    for e in prof.key_averages():
        kind = kind_of(e.key)
        by_kind[kind] = by_kind.get(kind, 0.0) + e.self_cpu_time_total
        if kind == "matrix products":
            flops, matmul_us = flops + e.flops, matmul_us + e.self_cpu_time_total
    total = sum(by_kind.values())
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]
    return {"updates": updates,
            "top": [{"op": e.key, "kind": kind_of(e.key), "calls": e.count,
                     "share": round(e.self_cpu_time_total / total, 3)} for e in top],
            "share": {k: round(v / total, 3) for k, v in sorted(by_kind.items(),
                                                               key=lambda kv: -kv[1])},
            "matmul_gflops": round(flops / matmul_us / 1e3, 1) if matmul_us else None}


def optimizer_variants(model: torch.nn.Module, lr: float, repeats: int = 20) -> dict:
    """Milliseconds of one AdamW step on the model's parameters with random gradients."""
    out = {}
    for name, kwargs in (("foreach (default)", {"foreach": True}), ("fused", {"fused": True}),
                         ("per-parameter loop", {"foreach": False})):
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), **kwargs)
        for p in model.parameters():
            p.grad = torch.randn_like(p) * 1e-3
        rates = []
        for _ in range(repeats + 3):
            start = time.perf_counter()
            opt.step()
            rates.append(1000 * (time.perf_counter() - start))
        out[name] = round(statistics.median(rates[3:]), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/multi30k_transformer_small.yaml")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="the forward through "
                    "torch.compile (dynamic shapes); writes results/train_profile_compiled.json")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--ops", type=int, default=0, help="also profile this many updates by "
                    "kind of operator")
    args = ap.parse_args()
    os.environ.setdefault("ATTNMT_DATA_DIR", str(MULTI30K))
    from attnmt.config import load_config
    from attnmt.training.loop import Trainer

    cfg = load_config(args.config, [f"train.threads={args.threads}", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run", quiet=True)
        ms = phases(trainer, args.steps, args.warmup, args.compile)
        first = ms.pop("first update", None)
        mean = ms.pop("mean update")
        ops = op_profile(trainer, args.ops) if args.ops else None
        opt = optimizer_variants(trainer.model, cfg.train.lr)
    step = sum(ms.values())
    print(f"one update of {cfg.model.preset} ({cfg.train.precision}, {args.threads} threads, "
          f"{'torch.compile, ' if args.compile else ''}median of {args.steps}): {step:.0f} ms "
          f"(mean {mean:.0f} ms)")
    if first is not None:
        print(f"  the first update, which compiles: {first / 1000:.1f} s")
    for key, value in ms.items():
        print(f"  {key:<14} {value:8.1f} ms  {100 * value / step:5.1f} %")
    print("AdamW step alone: " + ", ".join(f"{k} {v} ms" for k, v in opt.items()))
    if ops:
        print(f"operators' self CPU time over {ops['updates']} updates: " + ", ".join(
            f"{k} {100 * v:.1f} %" for k, v in ops["share"].items()) +
            f"; matrix products at {ops['matmul_gflops']} GFLOP/s")
        for e in ops["top"]:
            print(f"    {e['op']:<48} {e['kind']:<16} {e['calls']:>6} calls {e['share']:6.1%}")
    save("train_profile_compiled" if args.compile else "train_profile",
         {"config": args.config, "overrides": args.overrides, "threads": args.threads,
          "steps": args.steps, "compiled": args.compile, "first_update_ms": first,
          "warmup": args.warmup, "phases_ms": ms, "update_ms": round(step, 1),
          "update_mean_ms": mean, "adamw_ms": opt,
          **({"operators": ops} if ops else {})})


if __name__ == "__main__":
    main()
