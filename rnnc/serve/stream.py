"""`rnnc serve`'s streaming-session routes, over HTTP and over a WebSocket.

HTTP (`session_routes(models, store, settings)`):

- `POST /v1/models/NAME/sessions` (`/v1/sessions` with one model) opens a session:
  `{"session": ID, "model_name": NAME, "idle_s": S}`.
- `POST /v1/sessions/ID` with `{"instances": [chunk]}` (or `{"texts": ["..."]}`) runs
  the sequence's next chunk: `{"model_name", "session", "steps" (real steps so far),
  "predictions": [one]}`, the prediction worded as `/v1/predict` words it.
- `DELETE /v1/sessions/ID` closes it: `{"session": ID, "closed": true, "steps": N}`.

Chunks of different sessions of one model that wait at the same time run as one
onnxruntime call of at most `max_batch` rows (`rnnc.serve.batcher`, padded by length
where the model takes lengths); a chunk never waits for others to arrive
(`max_delay_ms` 0), so a lone session pays nothing for it. `--max-batch 1` turns it off.

WebSocket `/v1/models/NAME/sessions/ws` (`/v1/sessions/ws` with one model): a session
for as long as the connection lasts. Each text (or binary) message is one chunk's JSON,
as `POST /v1/sessions/ID` takes it; each reply is what that route answers, or
`{"error": "one line", "status": 4xx}` for a chunk refused, the connection kept open.
The server closes it (code 1000) after `session_idle_s` without a message. A refused
connection gets its error message, then close code 1008 (unknown model, no streaming
state) or 1013 (the session limit: try again later); without the token (`--token`:
`Authorization: Bearer` on the upgrade request) the upgrade itself is refused, 403.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .batcher import Batcher, Overloaded
from .models import ServedModel, model_named
from .sessions import Runner, Session, SessionStore, stepper
from .tensors import BadRequest, parse_json


def session_routes(models: Sequence[ServedModel], store: SessionStore, settings: Any) -> list[BaseRoute]:
    """The session routes on `store` for `models` (see the module)."""
    store.batchers.update({m.name: _batcher(m, settings) for m in models if getattr(m.predictor, "states", None)})
    runs = {name: batcher.submit for name, batcher in store.batchers.items()}

    async def open_session(request: Request) -> Response:
        model = model_named(models, request.path_params.get("name"), "sessions")
        session = store.open(model)
        return JSONResponse({"session": session.id, "model_name": model.name, "idle_s": store.idle_s})

    async def chunk(request: Request) -> Response:
        session = store.get(request.path_params["id"])
        body = parse_json(await request.body())
        return JSONResponse(await _answer(session, body, store, runs[session.model.name]))

    async def close_session(request: Request) -> Response:
        session = store.close(request.path_params["id"])
        return JSONResponse({"session": session.id, "closed": True, "steps": session.steps})

    async def socket(websocket: WebSocket) -> None:
        token = settings.token
        given = websocket.headers.get("authorization", "")
        if (token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode())) or not _same_origin(websocket, settings):
            await websocket.close(code=1008)  # before accepting: the upgrade is answered 403
            return
        await websocket.accept()
        try:
            session = store.open(model_named(models, websocket.path_params.get("name"), "sessions"), pinned=True)
        except BadRequest as err:
            await websocket.send_json({"error": str(err), "status": err.status})
            await websocket.close(code=1013 if err.status == 503 else 1008)
            return
        try:
            await _converse(websocket, session, store, settings, runs[session.model.name])
        finally:
            store.discard(session)

    return [
        Route("/v1/sessions", open_session, methods=["POST"]),
        Route("/v1/models/{name}/sessions", open_session, methods=["POST"]),
        Route("/v1/sessions/{id}", chunk, methods=["POST"]),
        Route("/v1/sessions/{id}", close_session, methods=["DELETE"]),
        WebSocketRoute("/v1/sessions/ws", socket),
        WebSocketRoute("/v1/models/{name}/sessions/ws", socket),
    ]


def _batcher(model: ServedModel, settings: Any) -> Batcher:
    """Chunks of different sessions joined into one run, each row with its own state in
    and out: padded by length where the model takes lengths, as `/v1/predict`'s are;
    only the chunks already waiting (a lone session's chunk runs at once)."""
    first = model.sequence_inputs[0] if model.sequence_inputs else None
    per_step = {t.name: first for t in model.outputs if first and len(t.shape) >= 3 and t.shape[1] == -1}
    lengths = model.lengths_of if getattr(model, "pads", True) else {}
    return Batcher(stepper(model), max_batch=settings.max_batch, max_delay_ms=0,
                   max_queue=settings.max_queue, model=model.name, sequence_inputs=model.sequence_inputs,
                   lengths_of=lengths, sequence_outputs=getattr(model, "steps_of", per_step))


def _same_origin(websocket: WebSocket, settings: Any) -> bool:
    """Whether a browser's page may open this socket: no Origin (not a browser), this
    server's own, or one of `cors_origins` (a browser lets any page open a WebSocket
    anywhere and read its replies: CORS does not apply)."""
    origin = websocket.headers.get("origin")
    if origin is None or origin in settings.cors_origins:
        return True
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


async def _answer(session: Session, body: Any, store: SessionStore, run: Runner) -> dict[str, Any]:
    try:
        predictions, steps = await session.step(body, store.touch, run)
    except Overloaded as err:
        raise BadRequest(str(err), 503, {"Retry-After": str(err.retry_after)}) from None
    return {"model_name": session.model.name, "session": session.id, "steps": steps, "predictions": [predictions]}


async def _converse(websocket: WebSocket, session: Session, store: SessionStore, settings: Any, run: Runner) -> None:
    """Chunks in, predictions out, until the client leaves or stays quiet `session_idle_s`."""
    limit = settings.max_body_bytes
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), store.idle_s)
        except asyncio.TimeoutError:
            await websocket.send_json({"error": f"no message for {store.idle_s:g} s: the session is closed", "status": 408})
            await websocket.close(code=1000)
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("bytes") or (message.get("text") or "").encode()
        try:
            if len(raw) > limit:
                raise BadRequest(f"the message is larger than the server's limit of {limit:,} bytes", 413)
            reply = await _answer(session, parse_json(raw), store, run)
        except BadRequest as err:
            reply = {"error": " ".join(str(err).split()), "status": err.status}
        try:
            await websocket.send_text(json.dumps(reply, separators=(",", ":")))
        except (WebSocketDisconnect, RuntimeError):  # gone while its chunk ran
            return
