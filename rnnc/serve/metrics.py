"""Prometheus metrics for `rnnc serve`, on the app's own registry (never the global one).

`ServeMetrics()` holds: `requests` (counter `rnnc_serve_requests_total` by model,
endpoint, status), `latency` (histogram `rnnc_serve_request_seconds` by model and
endpoint), `batch_rows` (histogram `rnnc_serve_batch_rows`: rows per model run, by
model), `queue_depth` (gauge `rnnc_serve_queue_depth`: requests waiting, by model) and
`sessions` (gauge `rnnc_serve_sessions`: onnxruntime sessions loaded, by model).
`observe(model, endpoint, status, seconds)` records one request; `metrics_response()`
is `GET /metrics`' text exposition.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """One server's counters, histograms and gauges (see the module)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("rnnc_serve_requests", "Requests answered, by model, endpoint and HTTP status",
                                ["model", "endpoint", "status"], registry=r)
        self.latency = Histogram("rnnc_serve_request_seconds", "Time to answer a request, in seconds",
                                 ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("rnnc_serve_batch_rows", "Rows in one model run (requests joined by the batcher)",
                                    ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("rnnc_serve_queue_depth", "Requests waiting for a model run", ["model"], registry=r)
        self.sessions = Gauge("rnnc_serve_sessions", "onnxruntime sessions loaded", ["model"], registry=r)

    def observe(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        """One answered request."""
        self.requests.labels(model=model, endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(model=model, endpoint=endpoint).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def metrics_response(self) -> Response:
        """`GET /metrics`: the Prometheus text format."""
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)
