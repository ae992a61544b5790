"""Decoding on a worker thread, with the model loaded there or on the main thread.

    python benchmarks/model_thread.py RUN_DIR [--threads 2] [--batches 24] [--rounds 3]

The server decodes on one model thread. PyTorch's CPU thread pool (OpenMP) keeps a team
of threads for each thread that calls into it, so a model loaded on the main thread and
run on another leaves two teams on the cores. Each way of loading runs in its own
process: the model loaded on the main thread or on the worker, then ``--batches``
batches of 16 validation sentences translated greedily on the worker, ``--rounds``
times; sentences/s per round. Writes ``results/model_thread_<run>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from common import save


def worker(run: str, load_on: str, threads: int, batches: int, rounds: int) -> list[float]:
    """Sentences/s per round, decoding on a worker thread; the model loaded ``load_on``."""
    import torch

    from attnmt.data.registry import read_split, resolve_dir
    from attnmt.inference.ct2engine import load_translator
    from attnmt.rundir import RunDir

    torch.set_num_threads(threads)
    model_thread = ThreadPoolExecutor(max_workers=1)
    translator = (model_thread.submit(load_translator, run).result() if load_on == "worker"
                  else load_translator(run))
    cfg = RunDir(run).load_config()
    pool = read_split(resolve_dir(cfg.data, RunDir(run).path / "data"), cfg.data.valid,
                      cfg.data.src, cfg.data.tgt).src
    texts = [[random.Random(100 * i + j).choice(pool) for j in range(16)]
             for i in range(batches)]

    def one_round() -> float:
        start = time.perf_counter()
        for batch in texts:
            translator.translate(batch, beam=1)
        return round(16 * batches / (time.perf_counter() - start), 1)

    return [model_thread.submit(one_round).result() for _ in range(rounds)]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7]))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rates = {}
    for load_on in ("main", "worker"):
        out = subprocess.run([sys.executable, __file__, "--worker", args.run, load_on,
                              str(args.threads), str(args.batches), str(args.rounds)],
                             capture_output=True, text=True, check=True).stdout
        rates[load_on] = json.loads(out.strip().splitlines()[-1])
        print(f"model loaded on the {load_on} thread: {rates[load_on]} sentences/s")
    ratio = round(max(rates["worker"]) / max(rates["main"]), 2)
    print(f"loaded on the worker / on the main thread (best rounds): {ratio:.2f}x")
    save(f"model_thread_{args.run.rstrip('/').split('/')[-1]}",
         {"run": args.run, "threads": args.threads, "batch": 16, "batches": args.batches,
          "separate_processes": True, "sentences_per_s": rates,
          "worker_over_main": ratio})


if __name__ == "__main__":
    main()
