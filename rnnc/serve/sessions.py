"""Streaming sessions of `rnnc serve`: one sequence's recurrent state kept between chunks.

A model exported with `export.streaming: true` takes its recurrent layers' states as
inputs and gives them back (`rnnc.runtime.Stream`, `GraphStream`). A `Session` holds
one sequence's state: `await session.step(body, touch, run)` reads one chunk from a
request body as `/v1/predict` reads an instance (`{"instances": [chunk]}`, or
`{"texts": ["..."]}` for a raw-text model), runs it from the state the earlier chunks
left (one chunk of a session at a time, in the order they came) and gives the chunk's
predictions as `/v1/predict` words them: per step for a per-step output, the prediction
after the chunk's last step otherwise. A chunk the model refuses leaves the state as it
was. `stepper(model)` runs a batch of chunks of different sessions, each row with its
own state in and out, for the `Batcher` that joins them (`rnnc.serve.stream`).

`SessionStore(max_sessions, idle_s, clock=time.monotonic)` holds the open sessions:
`open(model)` starts one under an id from `secrets.token_urlsafe` (a 400 with the export
hint for a model without streaming state; a 503 with `Retry-After` when
`max_sessions` are open after those idle for `idle_s` were closed), `get(id)` finds one
(a 404 once it has been idle `idle_s`, or for an id never given), `close(id)` ends one.
A session held by a WebSocket (`pinned`) is closed by its connection, never by the
sweep. `watch(metrics, names)` adds the gauge `rnnc_serve_open_sessions` by model.
"""

from __future__ import annotations

import asyncio
import collections
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import numpy as np
from prometheus_client import Gauge

from rnnc.errors import RnncError

from . import plain
from .metrics import ServeMetrics
from .models import ServedModel
from .tensors import BadRequest

ID_BYTES = 18  # 24 URL-safe characters, 144 random bits
Feeds = dict[str, np.ndarray]
Runner = Callable[[Feeds], Awaitable[Feeds]]


class Session:
    """One sequence's state on one model: `id`, `model`, `state` (each recurrent layer's,
    one row), `steps` (real steps so far), `chunks` (chunks run), `last_used` (the
    store's clock)."""

    def __init__(self, id: str, model: ServedModel, now: float, pinned: bool = False):
        self.id, self.model, self.last_used, self.pinned = id, model, now, pinned
        self.state = {name: np.zeros((1, size), np.float32) for name, size in model.predictor.states.items()}
        self.steps = self.chunks = 0
        self.lock = asyncio.Lock()  # chunks in the order they came, one at a time

    def feed_of(self, body: Any) -> dict[str, np.ndarray]:
        """The one chunk in a request body as the model's feeds, its lengths filled in by
        the model's rule (a `BadRequest` otherwise)."""
        feeds = plain.instance_feeds(self.model, body)
        if len(feeds) != 1:
            raise BadRequest(f"a session carries one sequence: send its next chunk alone, as {{\"instances\": [chunk]}}; "
                             f"got {len(feeds)} instances")
        model, feed = self.model, feeds[0]
        try:
            if model.graph:
                inputs = {n: v for n, v in feed.items() if n in model.predictor.inputs}
                arrays, fed = model.predictor.checked(inputs, {n: feed[ln] for n, ln in model.lengths_of.items() if ln in feed},
                                                      whole=False)
                return {**arrays, **{model.lengths_of[n]: v for n, v in fed.items()}}
            x, lengths = model.predictor.checked(feed["x"], feed.get("lengths"), whole=False)
        except RnncError as err:
            raise BadRequest("; ".join(str(err).splitlines())) from None
        return {"x": x} if lengths is None else {"x": x, "lengths": lengths}

    async def step(self, body: Any, touch: Callable[[Session], None], run: Runner | None = None) -> tuple[dict[str, Any], int]:
        """The predictions for the chunk in `body`, run from the state every earlier chunk
        left, and the real steps the session has seen with it. `run` takes the feeds and
        the state (`stepper`'s, through a `Batcher` that joins sessions' chunks); without
        it, the chunk runs alone in a worker thread."""
        feed = self.feed_of(body)
        steps = plain.steps_of(self.model, feed) or 0
        async with self.lock:
            touch(self)
            try:
                fed = {**feed, **self.state}
                if run is None:
                    outputs = await asyncio.get_running_loop().run_in_executor(None, stepper(self.model), fed)
                else:
                    outputs = await run(fed)
            except RnncError as err:  # the model's own checks: a shape, dtype or value it refuses
                raise BadRequest("; ".join(str(err).splitlines())) from None
            finally:
                touch(self)
            self.state = {name: outputs.pop(f"{name}.next") for name in self.state}
            self.chunks += 1
            self.steps += steps
            total = self.steps
        return plain.predictions(self.model, outputs, steps or None), total


def stepper(model: ServedModel) -> Callable[[Feeds], Feeds]:
    """The synchronous run of a batch of chunks on `model`: the feeds with each row's
    state (`state.*`) in, the outputs with each row's next state (`state.*.next`) out."""
    predictor = model.predictor

    def run(feeds: Feeds) -> Feeds:
        stream = predictor.stream()
        stream.state = {name: feeds[name] for name in predictor.states}
        if model.graph:
            inputs = {n: v for n, v in feeds.items() if n in predictor.inputs}
            lengths = {n: feeds[ln] for n, ln in model.lengths_of.items() if ln in feeds}
            outputs = dict(stream.step(inputs, lengths))
        else:
            outputs = {"y": stream.step(feeds["x"], feeds.get("lengths"))}
        assert stream.state is not None
        return {**outputs, **{f"{name}.next": value for name, value in stream.state.items()}}

    return run


class SessionStore:
    """The open sessions of one server (see the module)."""

    def __init__(self, max_sessions: int, idle_s: float, clock: Callable[[], float] = time.monotonic, workers: int = 1):
        if max_sessions < 1 or idle_s <= 0:
            raise ValueError("max_sessions must be at least 1 and idle_s above 0")
        self.max_sessions, self.idle_s, self.clock = max_sessions, idle_s, clock
        self.workers = workers  # processes serving: a session lives in the one that opened it
        self._open: collections.OrderedDict[str, Session] = collections.OrderedDict()  # least recently used first
        self.expired = 0  # sessions the sweep has closed
        self.batchers: dict[str, Any] = {}  # model name -> the Batcher joining its sessions' chunks (rnnc.serve.stream)

    def __len__(self) -> int:
        self.sweep()
        return len(self._open)

    def count(self, model: str) -> int:
        self.sweep()
        return sum(1 for s in self._open.values() if s.model.name == model)

    def open(self, model: ServedModel, pinned: bool = False) -> Session:
        """A new session on `model`."""
        if not getattr(model.predictor, "states", None):
            raise BadRequest(f"model '{model.name}' was exported without streaming state, so it cannot keep a session; "
                             "export it with export.streaming: true (e.g. rnnc compile --backend onnx --set export.streaming=true)")
        self.sweep()
        if len(self._open) >= self.max_sessions:
            wait = self._retry_after()
            raise BadRequest(f"the server holds {self.max_sessions} sessions, its limit; close one (DELETE /v1/sessions/ID) "
                             f"or retry in {wait} s", 503, {"Retry-After": str(wait)})
        session = Session(secrets.token_urlsafe(ID_BYTES), model, self.clock(), pinned)
        self._open[session.id] = session
        return session

    def get(self, id: str) -> Session:
        """The open session `id` (a 404 when it expired or never was)."""
        self.sweep()
        session = self._open.get(id)
        if session is None:
            shown = id if len(id) <= 64 else id[:61] + "..."
            elsewhere = "" if self.workers == 1 else (
                f"; this server runs {self.workers} worker processes and a session lives in the one that opened it: "
                "send its chunks over one kept-alive connection, or use the WebSocket endpoint")
            raise BadRequest(f"session '{shown}' is expired or unknown (a session closes after {self.idle_s:g} s unused); "
                             f"open another with POST /v1/models/NAME/sessions{elsewhere}", 404)
        return session

    def touch(self, session: Session) -> None:
        session.last_used = self.clock()
        if session.id in self._open:
            self._open.move_to_end(session.id)

    def close(self, id: str) -> Session:
        """End session `id` (a 404 when it is not open)."""
        session = self.get(id)
        del self._open[id]
        return session

    def discard(self, session: Session) -> None:
        self._open.pop(session.id, None)

    def sweep(self) -> None:
        """Close every session unused for `idle_s` (never one running a chunk, nor a pinned one)."""
        now = self.clock()
        for session in list(self._open.values()):
            if now - session.last_used < self.idle_s:
                break  # the rest were used later
            if not session.pinned and not session.lock.locked():
                del self._open[session.id]
                self.expired += 1

    def _retry_after(self) -> int:
        """Whole seconds until the least recently used session would expire (at least 1)."""
        unpinned = [s.last_used for s in self._open.values() if not s.pinned]
        if not unpinned:
            return max(1, math.ceil(self.idle_s))
        return max(1, math.ceil(min(unpinned) + self.idle_s - self.clock()))

    def watch(self, metrics: ServeMetrics, names: Iterable[str]) -> None:
        """The gauge `rnnc_serve_open_sessions` (by model) on `metrics`' registry."""
        gauge = Gauge("rnnc_serve_open_sessions", "Streaming sessions open (HTTP and WebSocket)", ["model"], registry=metrics.registry)
        for name in names:
            gauge.labels(model=name).set_function(lambda n=name: self.count(n))

