"""Serve metrics: each app its own registry; the exposition text, parsed, holds what was recorded."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from rnnc.serve.batcher import Batcher  # noqa: E402
from rnnc.serve.metrics import ServeMetrics  # noqa: E402


def _samples(metrics: ServeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.metrics_response().body.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_requests_latency_and_gauges_in_the_exposition() -> None:
    metrics = ServeMetrics()
    metrics.observe("moods", "infer", 200, 0.003)
    metrics.observe("moods", "infer", 200, 0.2)
    metrics.observe("moods", "predict", 400, 0.001)
    metrics.sessions.labels(model="moods").set(1)
    got = _samples(metrics)
    assert got[("rnnc_serve_requests_total", (("endpoint", "infer"), ("model", "moods"), ("status", "200")))] == 2
    assert got[("rnnc_serve_requests_total", (("endpoint", "predict"), ("model", "moods"), ("status", "400")))] == 1
    infer = (("endpoint", "infer"), ("model", "moods"))
    assert got[("rnnc_serve_request_seconds_count", infer)] == 2
    assert got[("rnnc_serve_request_seconds_sum", infer)] == pytest.approx(0.203)
    assert got[("rnnc_serve_request_seconds_bucket", (*infer[:1], ("le", "0.005"), *infer[1:]))] == 1
    assert got[("rnnc_serve_sessions", (("model", "moods"),))] == 1
    assert metrics.metrics_response().media_type.startswith("text/plain")


def test_each_metrics_has_its_own_registry() -> None:
    one, two = ServeMetrics(), ServeMetrics()
    one.observe("a", "infer", 200, 0.01)
    assert ("rnnc_serve_requests_total", (("endpoint", "infer"), ("model", "a"), ("status", "200"))) in _samples(one)
    assert not any(name == "rnnc_serve_requests_total" for name, _ in _samples(two))


def test_batcher_records_rows_per_run_and_an_empty_queue() -> None:
    metrics = ServeMetrics()

    async def scenario() -> None:
        batcher = Batcher(lambda f: {"y": f["x"] + 1}, max_batch=4, max_delay_ms=30, max_queue=16, metrics=metrics, model="m")
        await batcher.start()
        await asyncio.gather(*(batcher.submit({"x": np.zeros((1, 2), np.float32)}) for _ in range(6)))
        await batcher.close()

    asyncio.run(scenario())
    got = _samples(metrics)
    m = (("model", "m"),)
    assert got[("rnnc_serve_batch_rows_count", m)] == 2
    assert got[("rnnc_serve_batch_rows_sum", m)] == 6
    assert got[("rnnc_serve_batch_rows_bucket", (("le", "2.0"), ("model", "m")))] == 1  # the run of 2; the other held 4
    assert got[("rnnc_serve_queue_depth", m)] == 0
