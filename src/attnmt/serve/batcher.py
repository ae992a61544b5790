"""Micro-batching: collect concurrent requests, decode them together, answer each one.

Requests wait in a queue; a worker takes the first one, then keeps collecting
for up to ``max_wait_ms`` or until ``max_batch`` sentences are gathered, groups
them by decoding options (a job's per-text prefixes and constraints travel with its
texts), and runs the model in a single worker thread (off
the event loop, one model call at a time): the server's model thread, which loads the
model too (:func:`model_thread`).

A job carries its deadline. Work whose callers have all gone (deadline passed or
request cancelled) is never started, and running work is abandoned between two
decoding steps. When a group fails, its requests are retried one by one so only
the request at fault gets the error. The batcher also keeps a running estimate
of seconds per unit of work (source tokens x beam), which the server uses to
shed load before queueing work that cannot finish in time.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..inference.search import Cancelled
from ..inference.translator import Engine, Translation


@dataclass
class Job:
    texts: list[str]
    options: tuple           # what jobs decoded together share: for translation (beam,
                             # alpha, nbest, no_repeat_ngram, coverage, constrained)
    work: int                # source tokens x beam: what the request costs
    deadline: float          # time.monotonic() after which nobody waits for the answer
    future: asyncio.Future = field(repr=False, default=None)  # type: ignore[assignment]
    prefixes: list[str] | None = None              # one per text
    constraints: list[list[str]] | None = None     # one list of phrases per text

    def abandoned(self) -> bool:
        return self.future.done() or time.monotonic() > self.deadline


def _controls(jobs: list[Job]) -> dict:
    """The decoding controls of one option group, per text across its jobs; only those
    asked for, so an engine without a control is never handed it unasked."""
    _, _, _, no_repeat_ngram, coverage, constrained = jobs[0].options
    controls: dict = {}
    if any(job.prefixes for job in jobs):
        controls["prefixes"] = [p for job in jobs for p in job.prefixes or [""] * len(job.texts)]
    if constrained:
        controls["constraints"] = [c for job in jobs
                                   for c in job.constraints or [[]] * len(job.texts)]
    if no_repeat_ngram:
        controls["no_repeat_ngram"] = no_repeat_ngram
    if coverage:
        controls["coverage"] = coverage
    return controls


def model_thread() -> ThreadPoolExecutor:
    """The one thread a server runs every model call on, loading the model included.
    PyTorch's CPU thread pool (OpenMP) keeps a team of worker threads for each thread that
    calls into it: a model loaded on the main thread and run on another leaves two teams
    contending for the cores, and decoding in the server ran at half speed
    (docs/how-to/serving.md)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="attnmt-model")


class MicroBatcher:
    def __init__(self, translator: Engine, max_batch: int = 32, max_wait_ms: float = 10.0,
                 executor: ThreadPoolExecutor | None = None):
        self.translator = translator
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.executor = executor or model_thread()     # the thread that loaded the model
        self.task: asyncio.Task | None = None
        self.batches = 0
        self.texts = 0                   # texts answered, over all batches
        self.model_seconds = 0.0         # time the model thread spent answering them
        self.pending_work = 0            # queued or being decoded
        self.seconds_per_work = 0.0      # running estimate; 0 until something was decoded

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict:
        """Micro-batching since the server started: batches collected, texts answered,
        texts per batch, and seconds the model thread spent on them."""
        return {"batches": self.batches, "texts": self.texts,
                "mean_batch": round(self.texts / self.batches, 2) if self.batches else 0.0,
                "model_seconds": round(self.model_seconds, 3)}

    def expected_wait(self, work: int = 0) -> float:
        """Seconds until work of this size would be done, from the current queue."""
        return (self.pending_work + work) * self.seconds_per_work

    async def submit(self, texts: list[str], beam: int, alpha: float, nbest: int, *,
                     work: int, deadline: float, prefixes: list[str] | None = None,
                     constraints: list[list[str]] | None = None, no_repeat_ngram: int = 0,
                     coverage: float = 0.0) -> list[list[Translation]]:
        options = (beam, alpha, nbest, no_repeat_ngram, coverage, constraints is not None)
        return await self.submit_job(Job(texts, options, work, deadline, None, prefixes,
                                         constraints))

    async def submit_job(self, job: Job) -> list:
        """Queue ``job`` (its future is made here) and wait for its answers, one per text."""
        job.future = asyncio.get_running_loop().create_future()
        self.pending_work += job.work
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

    def _decode(self, jobs: list[Job]) -> list[list[Translation]]:
        """Decode the jobs of one option group together (on the model thread)."""
        beam, alpha, nbest = jobs[0].options[:3]
        texts = [t for job in jobs for t in job.texts]
        return self.translator.translate(texts, beam=beam, alpha=alpha, nbest=nbest,
                                         cancelled=lambda: all(j.abandoned() for j in jobs),
                                         **_controls(jobs))

    async def _answer(self, jobs: list[Job]) -> None:
        """Decode a group and answer its jobs; a failure is retried one job at a time."""
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self._decode, jobs)
        except Cancelled:
            return                          # every caller has gone; their futures are done
        except Exception as e:
            if len(jobs) > 1:
                for job in jobs:
                    if not job.abandoned():
                        await self._answer([job])
            elif not jobs[0].future.done():
                jobs[0].future.set_exception(e)
            return
        seconds, work = time.perf_counter() - start, sum(j.work for j in jobs)
        self.model_seconds += seconds
        self.texts += sum(len(j.texts) for j in jobs)
        if work:
            rate = seconds / work
            self.seconds_per_work = rate if not self.seconds_per_work else \
                0.7 * self.seconds_per_work + 0.3 * rate
        flat = iter(results)
        for job in jobs:
            answer = [next(flat) for _ in job.texts]
            if not job.future.done():
                job.future.set_result(answer)

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            groups: dict[tuple, list[Job]] = defaultdict(list)
            for job in jobs:
                groups[job.options].append(job)
            self.batches += 1
            for group in groups.values():
                live = [j for j in group if not j.abandoned()]   # never start for nobody
                try:
                    if live:
                        await self._answer(live)
                finally:
                    self.pending_work -= sum(j.work for j in group)
