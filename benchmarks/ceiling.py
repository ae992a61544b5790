"""The machine's float32 and bfloat16 matmul ceilings (GFLOP/s) and a model's training MFU.

    python benchmarks/ceiling.py                       # the ceiling only
    python benchmarks/ceiling.py --run runs/m30k-tsmall  # + model FLOPs utilisation of a run

MFU = (training FLOPs per target token x target tokens/s) / ceiling — the ceiling of the
precision the run trains in (``train.precision``: bf16 autocast or float32) — with the
usual 6 x parameters FLOPs per token (forward + backward). Source and target are
about as long here, so each parameter sees about one token per target token;
attention's own score/mix FLOPs are left out, so the figure is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from common import save


def matmul_gflops(n: int = 2048, repeats: int = 7, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a run directory whose training throughput to relate")
    args = ap.parse_args()
    ceilings = {"fp32": matmul_gflops(), "bf16": matmul_gflops(dtype=torch.bfloat16)}
    for name, value in ceilings.items():
        print(f"{name} matmul ceiling: {value:.1f} GFLOP/s on {torch.get_num_threads()} threads")
    out = {"matmul_gflops": round(ceilings["fp32"], 1),
           "bf16_matmul_gflops": round(ceilings["bf16"], 1)}
    if args.run:
        from attnmt.rundir import RunDir

        run = RunDir(args.run)
        cfg, _, model = run.load()
        precision = "bf16" if cfg.train.precision == "bf16" else "fp32"
        ceiling = ceilings[precision]
        params = model.num_parameters()
        rates = [json.loads(x)["tokens_per_s"] for x in run.metrics_file.read_text().splitlines()
                 if '"train"' in x and json.loads(x)["step"] > 20]
        rate = statistics.median(rates)
        flops = 6 * params * rate / 1e9
        print(f"{args.run}: {params:,} parameters, {rate:,.0f} target tokens/s -> "
              f"{flops:.1f} GFLOP/s = {100 * flops / ceiling:.1f}% of the {precision} ceiling")
        out.update(run=args.run, precision=precision, parameters=params,
                   tokens_per_s=round(rate, 1),
                   model_gflops=round(flops, 1), mfu=round(flops / ceiling, 3))
    save("ceiling", out)


if __name__ == "__main__":
    main()
