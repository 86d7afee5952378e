"""Dynamic batching for `rnnc serve`: concurrent requests for one model joined into one run.

`Batcher(run, *, max_batch, max_delay_ms, max_queue, metrics=None, model="",
sequence_inputs=(), lengths_of=None, sequence_outputs=None, pad=True)`:

- `run(feeds) -> outputs` is the synchronous model call on one batch (`ServedModel.run`),
  called in a worker thread, never on the event loop.
- `max_batch` rows at most per run (1: no batching); a batch closes `max_delay_ms` after
  its first request arrived, or sooner when full.
- `max_queue` requests may be in flight (waiting or running); `submit` past that raises
  `Overloaded` (HTTP 503).
- `sequence_inputs` are inputs with a time axis (axis 1); `lengths_of` maps one to its
  lengths input where the model takes lengths: requests of different steps are then
  padded with zeros to the batch's longest and given their own lengths. Without lengths,
  only requests of equal shapes share a run.
- `sequence_outputs` maps an output with a time axis to the input whose steps it has:
  each request gets it cut back to its own steps. `pad=False` (an output whose steps
  follow no input one for one) keeps requests of different steps apart.

`Batcher.for_model(model, ...)` takes these from a `ServedModel`. `await submit(feeds)`
gives one request's outputs (its rows only). The background task that forms batches runs
while requests wait and ends when none do (so the batcher follows whichever event loop
calls it); `await start()` accepts requests again after `close()`, which refuses new ones
and waits until every queued one has run. A request cancelled
while queued is dropped before its batch runs. A batch whose run fails is rerun one
request at a time, so a result (or refusal) never depends on which requests shared a run.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .metrics import ServeMetrics

Feeds = dict[str, np.ndarray]


class Overloaded(Exception):
    """The queue is full (or the batcher closed): retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


@dataclasses.dataclass(eq=False)  # by identity: the queue removes requests, and arrays have no truth value
class _Request:
    feeds: Feeds
    rows: int
    key: tuple[Any, ...]
    future: asyncio.Future[Feeds]
    steps: dict[str, int]


class Batcher:
    """Joins concurrent `submit`s into runs of at most `max_batch` rows (see the module)."""

    def __init__(self, run: Callable[[Feeds], Mapping[str, np.ndarray]], *, max_batch: int, max_delay_ms: float,
                 max_queue: int, metrics: ServeMetrics | None = None, model: str = "",
                 sequence_inputs: Iterable[str] = (), lengths_of: Mapping[str, str] | None = None,
                 sequence_outputs: Mapping[str, str] | None = None, pad: bool = True):
        if max_batch < 1 or max_queue < 1 or max_delay_ms < 0:
            raise ValueError("max_batch and max_queue must be at least 1, max_delay_ms at least 0")
        self._run, self.max_batch, self.max_delay = run, max_batch, max_delay_ms / 1000
        self.max_queue, self.metrics, self.model = max_queue, metrics, model
        self.sequence_inputs = set(sequence_inputs)
        self.lengths_of = dict(lengths_of or {}) if pad else {}
        self.sequence_outputs = dict(sequence_outputs or {})
        self._queue: collections.deque[_Request] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inflight = 0
        self.runs = 0  # how many batches have run

    @classmethod
    def for_model(cls, model: Any, **settings: Any) -> Batcher:
        """A batcher on a `ServedModel`: its `run`, sequence inputs, lengths and per-step outputs."""
        return cls(model.run, model=model.name, sequence_inputs=model.sequence_inputs, lengths_of=model.lengths_of,
                   sequence_outputs=getattr(model, "steps_of", {}), pad=getattr(model, "pads", True), **settings)

    async def start(self) -> None:
        self._closing = False

    async def close(self) -> None:
        """Refuse new requests, run every queued one, then stop."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await task

    def _ensure_task(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop or self._wake is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._serve(self._wake))
        return self._wake

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def submit(self, feeds: Mapping[str, np.ndarray]) -> Feeds:
        """`feeds`' outputs (one request's rows), run with whatever else is queued."""
        if self._closing:
            raise Overloaded("the server is shutting down; retry on another")
        if self._inflight >= self.max_queue:
            raise Overloaded(f"the server is busy ({self.max_queue} requests waiting); retry shortly")
        feeds = {n: np.asarray(v) for n, v in feeds.items()}
        rows = len(next(iter(feeds.values()))) if feeds else 0
        steps = {n: v.shape[1] for n, v in feeds.items() if n in self.sequence_inputs and v.ndim >= 2}
        request = _Request(feeds, rows, self._key(feeds), asyncio.get_running_loop().create_future(), steps)
        self._queue.append(request)
        self._inflight += 1
        self._gauge()
        self._ensure_task().set()
        try:
            return await asyncio.shield(request.future)
        except asyncio.CancelledError:
            if request in self._queue:  # still waiting: drop it
                self._queue.remove(request)
                self._gauge()
            else:  # running: its outcome goes unread, a failure unlogged
                request.future.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        finally:
            self._inflight -= 1

    def _key(self, feeds: Feeds) -> tuple[Any, ...]:
        """What must match for requests to share a run: names, dtypes, shapes past the
        batch axis (past the time axis too where the model takes lengths)."""
        parts = []
        for n in sorted(feeds):
            v = feeds[n]
            padded = n in self.sequence_inputs and n in self.lengths_of and v.ndim >= 2
            parts.append((n, v.dtype.str, v.shape[2:] if padded else v.shape[1:]))
        return tuple(parts)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.labels(model=self.model).set(len(self._queue))

    async def _serve(self, wake: asyncio.Event) -> None:
        while self._queue:
            first_at = time.monotonic()
            while not self._closing and self._rows() < self.max_batch:
                left = first_at + self.max_delay - time.monotonic()
                if left <= 0:
                    break
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self._take()
            if batch:
                await self._execute(batch)

    def _rows(self) -> int:
        if not self._queue:
            return 0
        key = self._queue[0].key
        return sum(r.rows for r in self._queue if r.key == key)

    def _take(self) -> list[_Request]:
        """The queued requests of the first one's kind, in order, up to `max_batch` rows."""
        batch: list[_Request] = []
        rows, key = 0, None
        for request in list(self._queue):
            if request.future.done():
                self._queue.remove(request)
                continue
            if key is None:
                key = request.key
            elif request.key != key or rows + request.rows > self.max_batch:
                continue
            batch.append(request)
            rows += request.rows
            self._queue.remove(request)
            if rows >= self.max_batch:
                break
        self._gauge()
        return batch

    async def _execute(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        self.runs += 1
        if self.metrics is not None:
            self.metrics.batch_rows.labels(model=self.model).observe(sum(r.rows for r in batch))
        try:
            outputs = await loop.run_in_executor(None, self._run, self._joined(batch))
        except Exception as err:
            if len(batch) == 1:
                _settle(batch[0].future, error=err)
                return
            for request in batch:  # each alone: a refusal names only its own request
                await self._execute([request])
            return
        start = 0
        for request in batch:
            own = {n: self._cut(n, np.asarray(v)[start : start + request.rows], request) for n, v in outputs.items()}
            start += request.rows
            _settle(request.future, value=own)

    def _joined(self, batch: list[_Request]) -> Feeds:
        if len(batch) == 1:
            return batch[0].feeds
        longest = {n: max(r.steps[n] for r in batch) for n in batch[0].steps}
        joined: Feeds = {}
        for n in batch[0].feeds:
            if n in self.lengths_of.values() and n not in batch[0].steps:
                continue  # lengths: filled in below
            joined[n] = np.concatenate([padded(r.feeds[n], longest.get(n)) for r in batch])
        for seq, lengths in self.lengths_of.items():
            if seq in longest:
                joined[lengths] = np.concatenate([
                    np.asarray(r.feeds[lengths], dtype=np.int64) if lengths in r.feeds
                    else np.full(r.rows, r.steps[seq], dtype=np.int64) for r in batch])
        return joined

    def _cut(self, name: str, value: np.ndarray, request: _Request) -> np.ndarray:
        source = self.sequence_outputs.get(name)
        if source is None or source not in request.steps or value.ndim < 2:
            return value
        return value[:, : request.steps[source]]


def padded(value: np.ndarray, steps: int | None) -> np.ndarray:
    """`value` padded with zeros along time (axis 1) to `steps` (None: as it is)."""
    if steps is None or value.shape[1] == steps:
        return value
    pad = [(0, 0)] * value.ndim
    pad[1] = (0, steps - value.shape[1])
    return np.pad(value, pad)


def _settle(future: asyncio.Future[Feeds], value: Feeds | None = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value or {})
