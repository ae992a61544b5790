"""Where decoding time goes: torch.profiler over attnmt's search on test2016.

    python benchmarks/decode_profile.py runs/m30k-tsmall [--beam 1] [--sentences 1000]

Prints the operators that take the most CPU time (self time, so a parent is not counted
with its children) and the wall time with and without the profiler, to read beside
``decode_speed.py``'s numbers. The profiler slows Python-heavy code more than kernels,
so read it for proportions, and confirm every change with ``decode_speed.py``.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import MULTI30K


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from attnmt.data.corpus import read_lines
    from attnmt.inference.translator import Translator

    tr = Translator.from_run(args.run)
    src = read_lines(MULTI30K / f"test_2016_flickr.{tr.cfg.data.src}")[: args.sentences]
    tr.translate(src[:64], beam=args.beam, batch_size=64)                 # warm up
    start = time.perf_counter()
    tr.translate(src, beam=args.beam, batch_size=64)
    plain = time.perf_counter() - start
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        tr.translate(src, beam=args.beam, batch_size=64)
        profiled = time.perf_counter() - start
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    print(f"wall: {plain:.2f} s ({len(src) / plain:.1f} sentences/s); "
          f"under the profiler {profiled:.2f} s")


if __name__ == "__main__":
    main()
