"""Micro-batching: collect concurrent requests, decode them together, answer each one.

Requests wait in a queue; a worker takes the first one, then keeps collecting
for up to ``max_wait_ms`` or until ``max_batch`` sentences are gathered, groups
them by decoding options, and runs the model in a single worker thread (off
the event loop, one model call at a time).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..translator import Translation, Translator


@dataclass
class Job:
    texts: list[str]
    options: tuple  # (beam, alpha, nbest)
    future: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]


class MicroBatcher:
    def __init__(self, translator: Translator, max_batch: int = 32, max_wait_ms: float = 10.0):
        self.translator = translator
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attnmt-model")
        self.task: asyncio.Task | None = None
        self.batches = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: list[str], beam: int, alpha: float, nbest: int
                     ) -> list[list[Translation]]:
        job = Job(texts, (beam, alpha, nbest), asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def run_in_model_thread(self, fn, *args):
        """Run any model call on the single model thread (e.g. attention)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _collect(self) -> list[Job]:
        jobs = [await self.queue.get()]
        size = len(jobs[0].texts)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                job = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    def _decode(self, groups: dict[tuple, list[Job]]) -> dict[tuple, list[list[Translation]]]:
        out = {}
        for (beam, alpha, nbest), jobs in groups.items():
            texts = [t for job in jobs for t in job.texts]
            out[(beam, alpha, nbest)] = self.translator.translate(texts, beam=beam, alpha=alpha,
                                                                  nbest=nbest)
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            jobs = [j for j in jobs if not j.future.done()]  # skip requests that timed out
            if not jobs:
                continue
            groups: dict[tuple, list[Job]] = defaultdict(list)
            for job in jobs:
                groups[job.options].append(job)
            self.batches += 1
            try:
                results = await loop.run_in_executor(self.executor, self._decode, groups)
            except Exception as e:  # answer every waiting request, keep serving
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            for options, group in groups.items():
                flat = iter(results[options])
                for job in group:
                    answer = [next(flat) for _ in job.texts]
                    if not job.future.done():
                        job.future.set_result(answer)
