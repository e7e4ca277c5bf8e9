"""Collects concurrent requests into one model call, so fifty one-sentence requests cost about what one
fifty-sentence request does.

A request waits at most `window_s` after it arrives for others to join it; requests only share a
batch when they ask for the same search (beam size and n-best), since one beam search call runs one
beam width. The model runs on a single worker thread: it is never used by two threads at once, and
the event loop keeps accepting requests while it works. Requests that arrive during a model call
are batched for the next one without waiting again, so under load the batches grow by themselves.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from nmt.inference.translator import Translation

log = logging.getLogger(__name__)

# (texts, beam_size, nbest, return_attention, target prefixes) -> one n-best list per text
TranslateFn = Callable[[list[str], int, int, bool, list[str]], list[list[Translation]]]


class Overloaded(Exception):
    """More sentences are waiting than the server agreed to queue."""


@dataclasses.dataclass(eq=False)
class _Job:
    texts: list[str]
    prefixes: list[str]  # one per text, "" for none: prefixes never split a batch
    search: tuple[int, int]  # (beam_size, nbest): only jobs with equal searches share a batch
    attention: bool
    arrived: float
    future: asyncio.Future


@dataclasses.dataclass
class BatchResult:
    translations: list[list[Translation]]
    batch_sentences: int  # sentences decoded in the same model call, this request's included


class Batcher:
    def __init__(self, translate: TranslateFn, *, window_s: float, max_sentences: int, max_pending: int,
                 thread_setup: Callable[[], None] | None = None):
        """`max_sentences` caps a batch (a larger request still runs, alone); `max_pending` caps the
        sentences waiting, beyond which `submit` raises Overloaded instead of queueing forever;
        `thread_setup` runs once in the model's thread before its first batch."""
        self.translate, self.window_s = translate, window_s
        self.max_sentences, self.max_pending = max_sentences, max_pending
        self._pending: list[_Job] = []
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nmt-model",
                                            initializer=thread_setup)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve_forever(), name="nmt-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job in self._pending:
            job.future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str], beam_size: int, nbest: int, attention: bool,
                     prefixes: Sequence[str] | None = None) -> BatchResult:
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running (call start() inside the event loop)")
        if sum(len(j.texts) for j in self._pending) + len(texts) > self.max_pending:
            raise Overloaded(f"more than {self.max_pending} sentences are waiting; try again shortly")
        loop = asyncio.get_running_loop()
        prefixes = [""] * len(texts) if prefixes is None else list(prefixes)
        if len(prefixes) != len(texts):
            raise ValueError(f"{len(prefixes)} prefixes for {len(texts)} texts")
        job = _Job(list(texts), prefixes, (beam_size, nbest), attention, loop.time(), loop.create_future())
        self._pending.append(job)
        self._arrived.set()
        return await job.future

    async def _serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            oldest = self._pending[0]
            deadline = oldest.arrived + self.window_s
            while self._waiting_sentences(oldest.search) < self.max_sentences:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            jobs = self._take(oldest.search)
            if jobs:
                await self._run(jobs)

    def _waiting_sentences(self, search: tuple[int, int]) -> int:
        return sum(len(j.texts) for j in self._pending if j.search == search and not j.future.done())

    def _take(self, search: tuple[int, int]) -> list[_Job]:
        """The oldest waiting jobs with this search, up to max_sentences (the first one always)."""
        taken, size = [], 0
        for job in self._pending:
            if job.future.done():  # its client went away
                continue
            if job.search == search and (not taken or size + len(job.texts) <= self.max_sentences):
                taken.append(job)
                size += len(job.texts)
        self._pending = [j for j in self._pending if j not in taken and not j.future.done()]
        return taken

    async def _run(self, jobs: list[_Job]) -> None:
        texts = [text for job in jobs for text in job.texts]
        prefixes = [prefix for job in jobs for prefix in job.prefixes]
        beam_size, nbest = jobs[0].search
        attention = any(job.attention for job in jobs)
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.translate, texts, beam_size, nbest, attention, prefixes)
            answers = _split(jobs, results)
        except asyncio.CancelledError:  # the server is stopping
            for job in jobs:
                job.future.cancel()
            raise
        except Exception as exc:  # fail this batch's requests, keep serving the others
            log.exception("translating a batch of %d sentences failed", len(texts))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        for job, answer in zip(jobs, answers, strict=True):
            if not job.future.done():
                job.future.set_result(BatchResult(answer, len(texts)))


def _split(jobs: list[_Job], results: list[list[Translation]]) -> list[list[list[Translation]]]:
    """Each job's share of the results, without attention for jobs that did not ask for it."""
    if len(results) != sum(len(job.texts) for job in jobs):
        raise RuntimeError(f"the model returned {len(results)} results for {sum(len(j.texts) for j in jobs)} texts")
    answers, start = [], 0
    for job in jobs:
        mine = results[start:start + len(job.texts)]
        start += len(job.texts)
        if not job.attention:
            mine = [[dataclasses.replace(h, attention=None) for h in nbest_list] for nbest_list in mine]
        answers.append(mine)
    return answers
