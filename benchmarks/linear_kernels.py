"""Which float32 Linear kernel is faster at decoding's sizes: oneDNN with a prepacked weight
or PyTorch's plain ``F.linear`` (BLAS).

    python benchmarks/linear_kernels.py [--threads 2] [--calls 300]

Times one call of each kernel (median of 5 blocks of ``--calls``, after a warm-up) for the
Transformer's shapes (d_model 256, FFN 1024, 8k vocabulary) at 1 to 64 rows, with the
weight prepacked for 64 rows as ``models.backend.PackedLinear`` packs it, and prints
which kernel ``PackedLinear.packs`` picks beside each row, so the rule can be checked on
another CPU. Writes ``results/linear_kernels.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F
from common import save

SHAPES = [(256, 256), (256, 768), (256, 1024), (1024, 256), (256, 8000)]
ROWS = [1, 4, 8, 16, 32, 64]


def per_call_us(fn, calls: int) -> float:
    """Median microseconds per call over 5 blocks of ``calls`` calls."""
    for _ in range(20):
        fn()
    blocks = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        blocks.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(blocks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from attnmt.models.backend import PackedLinear

    table = []
    with torch.inference_mode():
        for n_in, n_out in SHAPES:
            lin = torch.nn.Linear(n_in, n_out)
            packed = torch.ops.mkldnn._reorder_linear_weight(lin.weight.detach(), 64)
            for rows in ROWS:
                x = torch.randn(rows, 1, n_in)
                onednn = per_call_us(partial(torch.ops.mkldnn._linear_pointwise, x, packed,
                                             lin.bias, "none", [], ""), args.calls)
                blas = per_call_us(partial(F.linear, x, lin.weight, lin.bias), args.calls)
                size = rows * (n_in + n_out)
                rule = "packed" if PackedLinear.packs(rows, n_in, n_out) else "F.linear"
                table.append({"in": n_in, "out": n_out, "rows": rows, "onednn_packed_us":
                              round(onednn, 1), "f_linear_us": round(blas, 1), "size": size,
                              "rule_picks": rule,
                              "faster": "packed" if onednn < blas else "F.linear"})
                print(f"{n_in:>5}->{n_out:<5} rows {rows:>3}: packed {onednn:7.1f} us, "
                      f"F.linear {blas:7.1f} us; rule picks {rule}", flush=True)
    agree = sum(r["rule_picks"] == r["faster"] for r in table)
    print(f"the rule picks the faster kernel in {agree} of {len(table)} cases")
    save("linear_kernels", {"threads": args.threads, "packed_rows": PackedLinear.PACKED_ROWS,
                            "packed_size": PackedLinear.PACKED_SIZE,
                            "rule_agrees": agree, "cases": len(table), "table": table})


if __name__ == "__main__":
    main()
