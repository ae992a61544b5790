"""A bounded load test of `attnmt serve` on loopback: micro-batching on and off.

    python benchmarks/serve_load.py RUN_DIR [--clients 32] [--requests 320] [--beam 1]

Starts the server twice on a free 127.0.0.1 port (``--max-batch 32`` and
``--max-batch 1``), sends a fixed number of single-sentence requests from N
concurrent clients, and reports requests/s, p50/p99 latency and failures, and
the throughput ratio batched / unbatched. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import threading
import time

import httpx
import uvicorn
from common import save


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(run_dir: str, max_batch: int, max_wait_ms: float):
    from attnmt.serve.app import create_app
    from attnmt.translator import Translator

    port = _free_port()
    app = create_app(Translator.from_run(run_dir), run_dir, max_batch, max_wait_ms)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=320)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--inputs", default=None, help="file of sentences (default: the run's "
                    "validation source)")
    args = ap.parse_args()
    from attnmt.checkpoint import RunDir
    from attnmt.data.registry import read_split, resolve_dir

    cfg = RunDir(args.run).load_config()
    if args.inputs:
        pool = [x for x in open(args.inputs, encoding="utf-8").read().splitlines() if x.strip()]
    else:
        folder = resolve_dir(cfg.data, RunDir(args.run).path / "data")
        pool = read_split(folder, cfg.data.valid, cfg.data.src, cfg.data.tgt).src
    texts = [random.Random(i).choice(pool) for i in range(args.requests)]
    results = {}
    for name, max_batch in (("batched", 32), ("unbatched", 1)):
        server, thread, url = start(args.run, max_batch, 10.0)
        try:
            results[name] = asyncio.run(load(url, texts, args.clients, args.beam))
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        r = results[name]
        print(f"{name:>9} (max-batch {max_batch:>2}): {r['requests_per_s']:7.1f} req/s  "
              f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  failures {r['failures']}")
    ratio = results["batched"]["requests_per_s"] / results["unbatched"]["requests_per_s"]
    print(f"micro-batching throughput ratio: {ratio:.2f}x")
    save(f"serve_load_{args.run.rstrip('/').split('/')[-1]}",
         {"run": args.run, "clients": args.clients, "beam": args.beam, **results,
          "ratio_batched_over_unbatched": round(ratio, 2)})


if __name__ == "__main__":
    main()
