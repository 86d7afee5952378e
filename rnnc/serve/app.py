"""The `rnnc serve` application: `build_app(models, settings)` gives a Starlette app.

Routes: the Open Inference Protocol v2 (`GET /v2/health/live`, `/v2/health/ready`,
`/v2`, `/v2/models/NAME`, `/v2/models/NAME/ready`, `POST /v2/models/NAME/infer` with
JSON or binary tensors; each also under `/versions/1`), `POST /v1/predict`
(`/v1/models/NAME/predict` with several models), `GET /metrics` (Prometheus), streaming
sessions over HTTP and WebSocket (`rnnc.serve.stream`), `POST /v1/models/NAME/generate`
(`rnnc.serve.generate`), and the page's routes (`rnnc.serve.page`). Requests reach each model through its
`Batcher`. Every refusal is JSON `{"error": "one line"}`: 400 for a malformed body or a wrong shape, dtype or value,
404 for an unknown model or path, 405 for a wrong method, 401 without the token
(`settings.token`; health checks and the page's assets need none), 413 for a body
over `max_body_bytes`; an unexpected failure is logged and answered 500 with a line,
never a traceback. CORS is off unless `cors_origins` names origins. Each request is
one JSON line on the `rnnc.serve.access` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rnnc import __version__
from rnnc.errors import DataError, RnncError

from . import plain
from .batcher import Batcher, Overloaded
from .generate import generate_routes
from .metrics import ServeMetrics
from .models import ServedModel, model_named
from .page import PUBLIC_PATHS, page_routes
from .sessions import SessionStore
from .stream import session_routes
from .tensors import BadRequest, parse_json, read_request, write_response

log = logging.getLogger("rnnc.serve")
access = logging.getLogger("rnnc.serve.access")
HEALTH = frozenset({"/v2/health/live", "/v2/health/ready"})
Runner = Callable[[dict[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]]


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """How the server runs: where it listens, how it batches, who may call it."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    max_delay_ms: float = 2.0
    max_queue: int = 1024
    max_body_bytes: int = 16 * 1024 * 1024
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    max_sessions: int = 1000  # streaming sessions open at once (rnnc.serve.sessions)
    session_idle_s: float = 300.0  # a session unused this long is closed
    max_tokens: int = 4096  # the most tokens one generate request may ask for
    workers: int = 1  # processes serving (rnnc.serve.workers); each holds its own sessions


def error(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware: the bearer token on every path but health and the page's assets,
    and the body size limit (Content-Length, then the bytes as they stream in)."""

    def __init__(self, app: ASGIApp, settings: ServeSettings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token, path = self.settings.token, scope["path"]
        if token and path not in HEALTH and path not in PUBLIC_PATHS and scope["method"] != "OPTIONS":
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                await error("a bearer token is required: Authorization: Bearer TOKEN", 401,
                            {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        limit = self.settings.max_body_bytes
        too_big = error(f"the body is larger than the server's limit of {limit:,} bytes", 413)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await too_big(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BadRequest(f"the body is larger than the server's limit of {limit:,} bytes", 413)
            return message

        await self.app(scope, counted, send)


class AccessLog:
    """ASGI middleware: one JSON line per request on the `rnnc.serve.access` logger
    (time, client, method, path, status, milliseconds)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, models: Sequence[str]):
        self.app, self.metrics, self.models = app, metrics, list(models)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), [500]

        async def noted(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, noted)
        finally:
            client = scope.get("client") or ("", 0)
            model, endpoint = _endpoint(scope["path"], self.models)
            if endpoint:
                self.metrics.observe(model, endpoint, status[0], time.perf_counter() - began)
            access.info(json.dumps({"time": round(time.time(), 3), "client": client[0], "method": scope["method"],
                                    "path": scope["path"], "status": status[0],
                                    "ms": round(1000 * (time.perf_counter() - began), 2)}))


def _endpoint(path: str, models: list[str]) -> tuple[str, str]:
    """(model, endpoint) of a request path for the metrics; endpoint "" for the others."""
    parts = path.strip("/").split("/")
    if path in ("/v1/predict", "/v1/generate", "/v1/sessions") and len(models) == 1:
        return models[0], parts[-1]
    if len(parts) >= 4 and parts[:2] in (["v2", "models"], ["v1", "models"]) and parts[2] in models \
            and parts[-1] in ("infer", "predict", "generate", "sessions"):
        return parts[2], parts[-1]
    return "", ""


def build_app(models: Sequence[ServedModel], settings: ServeSettings, runners: dict[str, Runner] | None = None) -> Starlette:
    """The app serving `models`; `runners` (model name -> async run on one request's
    feeds) default to each model's `Batcher` (`rnnc.serve.batcher`: concurrent requests
    joined into runs of `max_batch` rows within `max_delay_ms`, 503 past `max_queue`)."""
    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise ValueError("two served models share a name")
    runs: dict[str, Runner] = dict(runners or {})
    metrics = ServeMetrics()
    batchers = {m.name: Batcher.for_model(m, max_batch=settings.max_batch, max_delay_ms=settings.max_delay_ms,
                                          max_queue=settings.max_queue, metrics=metrics) for m in models if m.name not in runs}
    for name, batcher in batchers.items():
        runs[name] = batcher.submit
    for m in models:  # onnxruntime sessions open (one per thread count a batch size has needed)
        metrics.sessions.labels(model=m.name).set_function(lambda p=m.predictor: len(getattr(p, "_sessions", {})))

    store = SessionStore(settings.max_sessions, settings.session_idle_s, workers=settings.workers)  # streaming sessions (rnnc.serve.stream)
    store.watch(metrics, by_name)

    def model_of(request: Request) -> ServedModel:
        name = request.path_params.get("name")
        if request.path_params.get("version", "1") != "1":
            raise BadRequest(f"model '{name}' has one version, 1; got version '{request.path_params['version']}'", 404)
        return model_named(models, name, "predict")

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def server(request: Request) -> Response:
        return JSONResponse({"name": "rnnc", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def metadata(request: Request) -> Response:
        model = model_of(request)
        return JSONResponse({"name": model.name, "versions": ["1"], "platform": "onnxruntime_onnx",
                             "inputs": [t.plain() for t in model.inputs], "outputs": [t.plain() for t in model.outputs]})

    async def model_ready(request: Request) -> Response:
        return JSONResponse({"name": model_of(request).name, "ready": True})

    async def infer(request: Request) -> Response:
        model = model_of(request)
        feeds, asked, all_binary = read_request(await request.body(), request.headers.get("inference-header-content-length"))
        for name, value in feeds.items():
            declared = model.input(name)
            if declared is None:
                raise BadRequest(f"unknown input '{name}'; the model takes: {', '.join(t.name for t in model.inputs)}")
            feeds[name] = _typed(value, declared.datatype, name)
        outputs = await while_connected(request, _run(runs[model.name], feeds))
        body, headers = write_response(model.name, outputs, asked, all_binary)
        return Response(body, headers=headers)

    async def predict(request: Request) -> Response:
        model = model_of(request)
        feeds = plain.instance_feeds(model, parse_json(await request.body()))
        run, rows = runs[model.name], []

        async def answers() -> list[dict[str, np.ndarray]]:
            try:
                return [await _run(run, batch) for batch in plain.merged(model, feeds)]
            except BadRequest:  # say which instance: run them one by one
                return list(await asyncio.gather(*(_run(run, feed, f"instances[{i}]: ") for i, feed in enumerate(feeds))))

        batches = await while_connected(request, answers())
        for outputs in batches:
            rows += [{n: v[i : i + 1] for n, v in outputs.items()} for i in range(len(next(iter(outputs.values()))))]
        said = [plain.predictions(model, out, plain.steps_of(model, feed)) for out, feed in zip(rows, feeds, strict=True)]
        return JSONResponse({"model_name": model.name, "predictions": said})

    async def exposition(request: Request) -> Response:
        return metrics.metrics_response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        for batcher in batchers.values():  # drain: every queued request runs
            await batcher.close()

    routes = [
        Route("/metrics", exposition, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server, methods=["GET"]),
        Route("/v2/models/{name}", metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v1/predict", predict, methods=["POST"]),
        Route("/v1/models/{name}/predict", predict, methods=["POST"]),
        *session_routes(list(models), store, settings),
        *generate_routes(list(models), settings, metrics),
        *page_routes(list(models)),
    ]
    middleware = [Middleware(AccessLog, metrics=metrics, models=list(by_name)), Middleware(Guard, settings=settings)]
    if settings.cors_origins:
        middleware.insert(1, Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                        allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"]))
    handlers = {BadRequest: _refused, ClientGone: _gone, HTTPException: _http, Exception: _failed}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.metrics, app.state.batchers, app.state.sessions = metrics, batchers, store
    return app


T = TypeVar("T")


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, unless the client disconnects first: then `work` is cancelled (a
    request still queued in a batcher never runs) and `ClientGone` raised. Call it once
    the body has been read: what the connection says next is only its disconnect."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ClientGone()
    return task.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _gone(request: Request, exc: Exception) -> Response:
    return error("the client closed the connection before its answer was ready", 499)


async def _run(run: Runner, feeds: dict[str, np.ndarray], where: str = "") -> dict[str, np.ndarray]:
    try:
        return await run(feeds)
    except Overloaded as err:
        raise BadRequest(str(err), 503, {"Retry-After": str(err.retry_after)}) from None
    except RnncError as err:  # the model's own checks: a shape, dtype, length or value it refuses
        raise BadRequest(where + "; ".join(str(err).splitlines())) from None


def _typed(value: np.ndarray, datatype: str, name: str) -> np.ndarray:
    """`value` as the model's `datatype`, if its kind fits (integers for INT64)."""
    if datatype == "INT64":
        if value.dtype.kind not in "iu":
            raise BadRequest(f"input '{name}' takes INT64 (integer ids or lengths), got {value.dtype}")
        return value.astype(np.int64)
    if value.dtype.kind not in "fiu":
        raise BadRequest(f"input '{name}' takes FP32 numbers, got {value.dtype}")
    return value


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return error(str(exc), exc.status, exc.headers)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error(f"no such path: {request.url.path}", 404)
    if exc.status_code == 405:
        return error(f"{request.method} is not allowed on {request.url.path}", 405, {"Allow": (exc.headers or {}).get("Allow", "")})
    return error(exc.detail, exc.status_code)


async def _failed(request: Request, exc: Exception) -> Response:
    if isinstance(exc, DataError):
        return error(str(exc), 400)
    log.exception("%s %s failed", request.method, request.url.path)
    return error("the server failed on this request (see its log); the request was not at fault or could not be read", 500)
