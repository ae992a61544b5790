"""Decoding on a worker thread, as the server does: where the model is loaded, and what
runs beside it.

    python benchmarks/model_thread.py RUN_DIR [--threads 2] [--batches 24] [--rounds 3]
    python benchmarks/model_thread.py RUN_DIR --neighbours [--threads 1,2]

The server decodes on one model thread. PyTorch's CPU thread pool (OpenMP) keeps a team
of threads for each thread that calls into it, so a model loaded on the main thread and
run on another leaves two teams on the cores. Each way of loading runs in its own
process: the model loaded on the main thread or on the worker, then ``--batches``
batches of 16 validation sentences translated greedily on the worker, ``--rounds``
times after one warm-up batch; sentences/s per round. Writes ``results/model_thread_<run>.json``.

``--neighbours`` (model loaded on the worker) times the same decoding alone and beside
what a server has beside its model thread, each in its own process, at every thread
count of ``--threads``: a Python thread of the same process busy a quarter of the time
(``gil``: the event loop parsing requests holds the interpreter lock the decoding
thread takes back after every operator), and another process busy 40 % of one core
(``cores``: the HTTP clients and the server's own work take CPU time from the
decoding threads). Writes ``results/model_thread_neighbours_<run>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from common import save

NEIGHBOURS = ("alone", "gil", "cores")
GIL_DUTY = 0.25              # share of the time the busy Python thread holds the lock
CORE_DUTY = 0.4              # share of one core the busy process takes
SPIN = ("import sys, time\nduty, end = float(sys.argv[1]), time.time() + float(sys.argv[2])\n"
        "while time.time() < end:\n    t = time.perf_counter()\n"
        "    while time.perf_counter() - t < 0.002 * duty: pass\n"
        "    time.sleep(0.002 * (1 - duty))\n")


def _busy_thread(stop: threading.Event) -> None:
    """Pure Python work (it holds the interpreter lock) GIL_DUTY of the time."""
    while not stop.is_set():
        start = time.perf_counter()
        while time.perf_counter() - start < 0.002 * GIL_DUTY:
            sum(range(50))
        time.sleep(0.002 * (1 - GIL_DUTY))


def worker(run: str, load_on: str, threads: int, batches: int, rounds: int,
           neighbour: str = "alone") -> list[float]:
    """Sentences/s per round, decoding on a worker thread; the model loaded ``load_on``,
    ``neighbour`` (one of NEIGHBOURS) running beside it."""
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

    model_thread.submit(translator.translate, texts[0], beam=1).result()   # warm
    stop, spinner = threading.Event(), None
    if neighbour == "gil":
        threading.Thread(target=_busy_thread, args=(stop,), daemon=True).start()
    elif neighbour == "cores":
        spinner = subprocess.Popen([sys.executable, "-c", SPIN, str(CORE_DUTY), "600"])
    try:
        return [model_thread.submit(one_round).result() for _ in range(rounds)]
    finally:
        stop.set()
        if spinner:
            spinner.kill()


def _measure(run: str, load_on: str, threads: int, batches: int, rounds: int,
             neighbour: str = "alone") -> list[float]:
    """:func:`worker` in a process of its own."""
    out = subprocess.run([sys.executable, __file__, "--worker", run, load_on, str(threads),
                          str(batches), str(rounds), neighbour],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def neighbours(args) -> None:
    rates: dict[str, dict[str, list[float]]] = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        rates[str(threads)] = {}
        for neighbour in NEIGHBOURS:
            got = _measure(args.run, "worker", threads, args.batches, args.rounds, neighbour)
            rates[str(threads)][neighbour] = got
            print(f"{threads} thread(s), {neighbour}: {got} sentences/s")
    save(f"model_thread_neighbours_{args.run.rstrip('/').split('/')[-1]}",
         {"run": args.run, "batch": 16, "batches": args.batches, "separate_processes": True,
          "gil_duty": GIL_DUTY, "core_duty": CORE_DUTY, "sentences_per_s": rates})


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7]),
                                sys.argv[7])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--threads", default="2", help="PyTorch threads (with --neighbours: a "
                    "comma-separated list)")
    ap.add_argument("--batches", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--neighbours", action="store_true",
                    help="decode alone, beside a busy Python thread, beside a busy process")
    args = ap.parse_args()
    if args.neighbours:
        return neighbours(args)
    threads = int(args.threads)
    rates = {}
    for load_on in ("main", "worker"):
        rates[load_on] = _measure(args.run, load_on, threads, args.batches, args.rounds)
        print(f"model loaded on the {load_on} thread: {rates[load_on]} sentences/s")
    ratio = round(max(rates["worker"]) / max(rates["main"]), 2)
    print(f"loaded on the worker / on the main thread (best rounds): {ratio:.2f}x")
    save(f"model_thread_{args.run.rstrip('/').split('/')[-1]}",
         {"run": args.run, "threads": threads, "batch": 16, "batches": args.batches,
          "separate_processes": True, "sentences_per_s": rates,
          "worker_over_main": ratio})


if __name__ == "__main__":
    main()
