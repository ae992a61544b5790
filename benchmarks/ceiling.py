"""The machine's float32 and bfloat16 matmul ceilings (GFLOP/s) and a model's training MFU.

    python benchmarks/ceiling.py                       # the ceiling only
    python benchmarks/ceiling.py --run runs/m30k-tsmall  # + model FLOPs utilisation of a run
    python benchmarks/ceiling.py --products configs/multi30k_transformer_small.yaml

MFU = (training FLOPs per target token x target tokens/s) / ceiling — the ceiling of the
precision the run trains in (``train.precision``: bf16 autocast or float32) — with the
usual 6 x parameters FLOPs per token (forward + backward). Source and target are
about as long here, so each parameter sees about one token per target token;
attention's own score/mix FLOPs are left out, so the figure is a lower bound.

``--products CONFIG`` times, in the precision CONFIG trains in, the matrix products one
update of its Transformer is made of, at its own sizes: every Linear layer at
``train.max_tokens`` rows, forward (rows x in . in x out) and the backward's two (the
input's gradient, rows x out . out x in, and the weight's, in x rows . rows x out); with
the layer counts of the model, their FLOPs over their time is the best rate the
update's products can run at on this CPU: roughly the MFU the update could reach if
every other operator were free.
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


def _product_seconds(rows: int, n_in: int, n_out: int, dtype: torch.dtype,
                     repeats: int = 7) -> float:
    """Median seconds of one Linear layer's three products (forward, input and weight
    gradients) at ``rows`` rows."""
    x, w, g = (torch.randn(*shape, dtype=dtype)
               for shape in ((rows, n_in), (n_out, n_in), (rows, n_out)))

    def three() -> None:
        x @ w.T, g @ w, x.T @ g

    three()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        three()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def product_rates(config: str, ceilings: dict[str, float]) -> dict:
    """The rate of the products one update of ``config``'s Transformer is made of (see the
    module docstring), per Linear layer and overall."""
    from attnmt.config import load_config

    cfg = load_config(config)
    m = cfg.model
    if m.arch != "transformer":
        raise SystemExit(f"--products times an encoder-decoder Transformer's products; "
                         f"{config} trains model.arch {m.arch!r}: give a Transformer config")
    d, f, rows = m.d_model, m.ffn, cfg.train.max_tokens
    vocab = cfg.data.vocab_size
    layers = {"q, k, v": (d, 3 * d, m.enc_layers + m.dec_layers),
              "attention output, cross-attention query": (d, d, m.enc_layers + 3 * m.dec_layers),
              "cross-attention keys, values": (d, 2 * d, m.dec_layers),
              "FFN in": (d, f, m.enc_layers + m.dec_layers),
              "FFN out": (f, d, m.enc_layers + m.dec_layers),
              "output layer": (d, vocab, 1)}
    precision = "bf16" if cfg.train.precision == "bf16" else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    table, flops, seconds = [], 0.0, 0.0
    for name, (n_in, n_out, count) in layers.items():
        t = _product_seconds(rows, n_in, n_out, dtype)
        rate = 6 * rows * n_in * n_out / t / 1e9
        table.append({"layer": name, "in": n_in, "out": n_out, "count": count,
                      "gflops": round(rate, 1)})
        flops, seconds = flops + count * 6 * rows * n_in * n_out, seconds + count * t
        print(f"  {name} ({n_in} -> {n_out}, x{count}): {rate:.1f} GFLOP/s")
    overall = flops / seconds / 1e9
    print(f"{config}: the update's products at {rows} rows run at {overall:.1f} GFLOP/s "
          f"= {100 * overall / ceilings[precision]:.1f}% of the {precision} ceiling")
    return {"config": config, "rows": rows, "precision": precision, "layers": table,
            "gflops": round(overall, 1),
            "share_of_ceiling": round(overall / ceilings[precision], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a run directory whose training throughput to relate")
    ap.add_argument("--products", metavar="CONFIG", help="also time the products of one "
                    "update of this config's Transformer at its own sizes")
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
    if args.products:
        out["products"] = product_rates(args.products, ceilings)
    save("ceiling", out)


if __name__ == "__main__":
    main()
