"""Dynamic micro-batching: requests from many threads share one forward pass.

One :class:`MicroBatcher` per served model owns a background thread. Callers enqueue a request
(its texts, already encoded by the version they saw) and block on a future. The thread collects
a *round* of requests and computes it with **one** :class:`ServedModel` snapshot, taken when the
round starts; a request whose texts were encoded by another version is re-encoded first. So a
hot reload (the runtime swapping the snapshot) never splits a round across versions, and every
result carries the version that computed it.

When to start a round: as soon as the round is full (``max_batch_size`` texts per worker), or as
many texts wait as the previous round had (in a closed loop of N clients the same N come back),
or when the oldest request has waited ``max_wait_s``. A lone client therefore never waits for
company it will not get, while bursts still fill batches.

How to cut a round into forward passes: texts are sorted by token length and split where the
padding saved outweighs the cost of one more pass (a small dynamic program; padding every text to
the longest wastes work, PERFORMANCE-NOTES), each pass at most ``max_batch_size`` texts, and at
least one pass per worker when there are enough texts.

Workers: with ``workers > 1`` the passes of a round run at the same time on a small thread pool,
typically one single-threaded pass per core. That beats one pass spread over all cores by
intra-op threads whenever the machine is shared: every parallel operator ends in a barrier, and a
barrier waits for its slowest thread, which on a busy machine is one the scheduler has paused.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from gpt2_agent.serving.errors import ServingClosed
from gpt2_agent.serving.loader import ServedModel

logger = logging.getLogger(__name__)

# One extra forward pass costs about as much as this many padded tokens (Python and kernel-launch
# overhead, plus the lower efficiency of smaller matmuls); measured on the 6-layer, d=384 model.
DEFAULT_PASS_OVERHEAD_TOKENS = 512

RunBatch = Callable[[ServedModel, Sequence[Sequence[int]]], Sequence[Any]]


@dataclass
class _Request:
    texts: Sequence[str]
    rows: list[list[int]]
    encoded_by: ServedModel
    arrived: float
    future: Future[tuple[ServedModel, list[Any]]] = field(default_factory=Future)


@dataclass
class BatchStats:
    """Counters of one batcher (read them for metrics; they only grow)."""

    requests: int = 0
    texts: int = 0
    rounds: int = 0
    forward_passes: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    reencoded: int = 0
    largest_pass: int = 0

    def snapshot(self) -> dict[str, float]:
        """The counters, plus mean texts per pass and the share of computed tokens that were real."""
        out: dict[str, float] = dict(self.__dict__)
        out["mean_pass_size"] = self.texts / self.forward_passes if self.forward_passes else 0.0
        out["padding_efficiency"] = self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0
        return out


def plan_passes(
    lengths: Sequence[int], max_batch: int, overhead_tokens: int, min_passes: int = 1
) -> list[tuple[int, int]]:
    """Cut ascending ``lengths`` into ``[start, end)`` passes minimising padded tokens + overhead.

    The cost of a pass over ``lengths[i:j]`` is ``overhead_tokens + (j - i) * lengths[j - 1]``.
    With fewer than ``min_passes`` passes (and enough texts), the texts are instead cut into
    ``min_passes`` equal runs, so that parallel workers all get one.
    """
    n = len(lengths)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(max(0, end - max_batch), end):
            cost = best[start] + overhead_tokens + (end - start) * lengths[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    passes = []
    end = n
    while end > 0:
        passes.append((cut[end], end))
        end = cut[end]
    if len(passes) < min(min_passes, n):
        k = min(min_passes, n)
        bounds = [round(i * n / k) for i in range(k + 1)]
        return list(itertools.pairwise(bounds))
    return passes[::-1]


class MicroBatcher:
    """Collects requests into rounds and computes each round with one model snapshot.

    :param name: for the thread name and logs.
    :param current: returns the snapshot to compute the next round with.
    :param run_batch: computes one forward pass: ``run_batch(snapshot, rows) -> one result per row``.
    :param max_batch_size: most texts in one forward pass.
    :param max_wait_s: longest a request waits for others before its round starts.
    :param workers: forward passes computed at the same time (threads of a pool).
    """

    def __init__(
        self,
        name: str,
        current: Callable[[], ServedModel],
        run_batch: RunBatch,
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        pass_overhead_tokens: int = DEFAULT_PASS_OVERHEAD_TOKENS,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1 (got {workers})")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1 (got {max_batch_size})")
        if max_wait_s < 0:
            raise ValueError(f"max_wait must be >= 0 (got {max_wait_s})")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.pass_overhead_tokens = pass_overhead_tokens
        self.workers = workers
        self.round_limit = max_batch_size * workers
        self.stats = BatchStats()
        self._current = current
        self._run_batch = run_batch
        self._queue: collections.deque[_Request] = collections.deque()
        self._queued_texts = 0
        self._expected = 1  # texts in the previous round: how many to wait for before starting
        self._cond = threading.Condition()
        self._closed = False
        self._pool = ThreadPoolExecutor(workers, f"forward-{name}") if workers > 1 else None
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(
        self, texts: Sequence[str], rows: list[list[int]], encoded_by: ServedModel
    ) -> Future[tuple[ServedModel, list[Any]]]:
        """Queue ``texts`` (encoded as ``rows`` by ``encoded_by``); the future gives (snapshot, results)."""
        request = _Request(texts, rows, encoded_by, time.monotonic())
        with self._cond:
            if self._closed:
                raise ServingClosed(f"the batcher of {self.name!r} is closed")
            self._queue.append(request)
            self._queued_texts += len(rows)
            self._cond.notify()
        return request.future

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting requests, finish the queued ones, and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # ------------------------------------------------------------------ the batching thread

    def _loop(self) -> None:
        while True:
            round_ = self._collect()
            if round_ is None:
                return
            try:
                snapshot = self._current()
                self._compute(snapshot, round_)
            except BaseException as exc:  # deliver every failure to the callers, keep serving
                logger.exception("batcher %s: a round of %d requests failed", self.name, len(round_))
                for request in round_:
                    if not request.future.done():
                        request.future.set_exception(exc)

    def _collect(self) -> list[_Request] | None:
        """Wait for the next round; None once closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            target = min(self.round_limit, self._expected)
            deadline = self._queue[0].arrived + self.max_wait_s
            while self._queued_texts < target and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            round_: list[_Request] = []
            taken = 0
            # Whole requests only; one larger than a batch is taken alone and split into passes.
            while self._queue and (not round_ or taken + len(self._queue[0].rows) <= self.round_limit):
                request = self._queue.popleft()
                round_.append(request)
                taken += len(request.rows)
            self._queued_texts -= taken
            self._expected = max(1, taken)
            return round_

    def _compute(self, snapshot: ServedModel, round_: list[_Request]) -> None:
        stats = self.stats
        for request in round_:
            if request.encoded_by is not snapshot:  # encoded by the version before a swap
                request.rows = snapshot.encode(request.texts)
                request.encoded_by = snapshot
                stats.reencoded += len(request.rows)
        items = [(len(row), r, i) for r, request in enumerate(round_) for i, row in enumerate(request.rows)]
        items.sort(key=lambda item: item[0])
        results: list[list[Any]] = [[None] * len(request.rows) for request in round_]
        pending = [len(request.rows) for request in round_]
        stats.rounds += 1
        stats.requests += len(round_)
        lengths = [n for n, _, _ in items]
        chunks = [
            items[a:b]
            for a, b in plan_passes(lengths, self.max_batch_size, self.pass_overhead_tokens, self.workers)
        ]

        def run(chunk: list[tuple[int, int, int]]) -> Sequence[Any]:
            return self._run_batch(snapshot, [round_[r].rows[i] for _, r, i in chunk])

        if self._pool is None or len(chunks) == 1:
            for chunk in chunks:  # in order, answering callers as their last text is done
                self._deliver(snapshot, round_, chunk, run(chunk), results, pending)
            return
        futures = {self._pool.submit(run, chunk): chunk for chunk in chunks}
        failure: BaseException | None = None
        for future in as_completed(futures):
            chunk = futures[future]
            error = future.exception()
            if error is not None:  # fail this pass's callers; the other passes still answer theirs
                failure = error
                for _, r, _ in chunk:
                    if not round_[r].future.done():
                        round_[r].future.set_exception(error)
                continue
            self._deliver(snapshot, round_, chunk, future.result(), results, pending)
        if failure is not None:
            logger.error("batcher %s: a forward pass failed: %r", self.name, failure)

    def _deliver(
        self,
        snapshot: ServedModel,
        round_: list[_Request],
        chunk: list[tuple[int, int, int]],
        outputs: Sequence[Any],
        results: list[list[Any]],
        pending: list[int],
    ) -> None:
        """Record one finished pass and answer every caller whose last text it held."""
        stats = self.stats
        stats.forward_passes += 1
        stats.texts += len(chunk)
        stats.real_tokens += sum(n for n, _, _ in chunk)
        stats.padded_tokens += len(chunk) * chunk[-1][0]
        stats.largest_pass = max(stats.largest_pass, len(chunk))
        for (_, r, i), output in zip(chunk, outputs, strict=True):
            results[r][i] = output
            pending[r] -= 1
            if pending[r] == 0 and not round_[r].future.done():
                round_[r].future.set_result((snapshot, results[r]))


__all__ = ["DEFAULT_PASS_OVERHEAD_TOKENS", "BatchStats", "MicroBatcher", "RunBatch", "plan_passes"]
