"""A bounded load test of `attnmt serve` on loopback: micro-batching on and off, and the
PyTorch engine against the CTranslate2 engine.

    python benchmarks/serve_load.py RUN_DIR [--clients 32] [--requests 320] [--beam 1]
    python benchmarks/serve_load.py RUN_DIR --ctranslate2 [--threads 2] [--ct2-threads 2,1]

Starts ``attnmt serve`` as its own process on a free 127.0.0.1 port — with the attnmt
engine at ``--max-batch 32`` and ``--max-batch 1``, and with ``--ctranslate2`` the run
exported to CTranslate2 at ``--max-batch 32`` — sends a fixed number of single-sentence
requests from N concurrent clients, and reports requests/s, p50/p99 latency, failures,
the server's mean micro-batch and how busy its model thread was (``/stats``), and the
throughput ratios. Every server decodes with ``--threads`` CPU threads;
``--ct2-threads 2,1`` serves the CTranslate2 export once per thread count (on a CPU where
CTranslate2 runs faster on fewer threads, its best is the fair anchor). Writes
``results/serve_load_<run>.json`` (``_t1`` etc. added for other ``--threads`` than 2).
Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import time

import httpx
from common import save


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(path: str, max_batch: int, max_wait_ms: float, engine: str = "attnmt",
          threads: int = 0):
    """``attnmt serve`` in its own process; returns it and its URL once /health answers."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "attnmt.cli", "serve", path, "--port",
                             str(port), "--max-batch", str(max_batch), "--max-wait-ms",
                             str(max_wait_ms), "--engine", engine, "--threads", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the server for {path} exited with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server for {path} did not answer within 60 s")


async def load(url: str, texts: list[str], clients: int, beam: int) -> dict:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in texts:
        queue.put_nowait(t)
    latencies, failures = [], 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            text = queue.get_nowait()
            start = time.perf_counter()
            try:
                r = await http.post("/translate", json={"text": text, "beam": beam})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            failures += not ok

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    seconds = time.perf_counter() - start
    latencies.sort()
    return {"requests": len(texts), "failures": failures, "seconds": round(seconds, 2),
            "requests_per_s": round(len(texts) / seconds, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)}


def batching(url: str, seconds: float) -> dict:
    """The server's micro-batches over the load (``/stats``; the server is fresh, so they
    are the load's): texts per batch, and the share of the load's wall time the model
    thread was decoding."""
    stats = httpx.get(url + "/stats", timeout=10).json()
    return {"mean_batch": stats["mean_batch"],
            "model_busy": round(stats["model_seconds"] / seconds, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=320)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--ctranslate2", action="store_true",
                    help="also serve the run exported to CTranslate2 (float32)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of every server")
    ap.add_argument("--ct2-threads", default="", help="comma-separated thread counts to "
                    "serve the CTranslate2 export with (default: --threads)")
    ap.add_argument("--inputs", default=None, help="file of sentences (default: the run's "
                    "validation source)")
    args = ap.parse_args()
    from attnmt.data.registry import read_split, resolve_dir
    from attnmt.rundir import RunDir

    cfg = RunDir(args.run).load_config()
    if args.inputs:
        pool = [x for x in open(args.inputs, encoding="utf-8").read().splitlines() if x.strip()]
    else:
        folder = resolve_dir(cfg.data, RunDir(args.run).path / "data")
        pool = read_split(folder, cfg.data.valid, cfg.data.src, cfg.data.tgt).src
    texts = [random.Random(i).choice(pool) for i in range(args.requests)]
    servers = [("batched", args.run, 32, "attnmt", args.threads),
               ("unbatched", args.run, 1, "attnmt", args.threads)]
    if args.ctranslate2:
        from decode_speed import export

        folder = str(export(args.run, "float32"))
        for n in [int(t) for t in (args.ct2_threads or str(args.threads)).split(",")]:
            name = "ctranslate2_batched" + ("" if n == args.threads else f"_t{n}")
            servers.append((name, folder, 32, "ctranslate2", n))
    results = {}
    for name, path, max_batch, engine, threads in servers:
        proc, url = start(path, max_batch, 10.0, engine, threads)
        try:
            results[name] = asyncio.run(load(url, texts, args.clients, args.beam))
            results[name].update(batching(url, results[name]["seconds"]))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        r = results[name]
        print(f"{name:>22} (max-batch {max_batch:>2}, {threads} threads): "
              f"{r['requests_per_s']:7.1f} req/s  p50 {r['p50_ms']:7.1f} ms  "
              f"p99 {r['p99_ms']:7.1f} ms  failures {r['failures']}  "
              f"mean batch {r['mean_batch']:4.1f}  model busy {r['model_busy']:.0%}")
    ratios = {"batched_over_unbatched": round(results["batched"]["requests_per_s"] /
                                              results["unbatched"]["requests_per_s"], 2)}
    for name in (n for n in results if n.startswith("ctranslate2")):
        ratios[f"attnmt_over_{name}"] = round(results["batched"]["requests_per_s"] /
                                              results[name]["requests_per_s"], 2)
    print("throughput ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    suffix = "" if args.threads == 2 else f"_t{args.threads}"
    save(f"serve_load_{args.run.rstrip('/').split('/')[-1]}{suffix}",
         {"run": args.run, "clients": args.clients, "beam": args.beam, "threads": args.threads,
          "separate_processes": True, **results, "ratios": ratios})


if __name__ == "__main__":
    main()
