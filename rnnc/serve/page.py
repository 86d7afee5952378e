"""The page at `/` of `rnnc serve`: try a served model in a browser.

`page_routes(models)` gives the page's routes: `/` (the HTML), `/static/page.js` and
`/static/page.css` (read once when the routes are built: no request names a file), and
`GET /v1/models`, the JSON the page reads to learn each model: its name, what it takes
(`text` for a raw-text model, `sequence` for float features, `ids` for token ids,
`json` for a v2 graph's named inputs), its features and timesteps, its class names,
what it gives (`classes`, `sequence` or `values`), its Open Inference Protocol inputs
and outputs, and the URL its predictions are POSTed to (`/v1/predict` with one model,
`/v1/models/NAME/predict` with several). The page draws the answer itself (inline SVG;
nothing is fetched from anywhere but this server, which its Content-Security-Policy
enforces). A server that wants a token should let `PUBLIC_PATHS` through without one:
the page asks for the token when `/v1/models` answers 401 and sends it from then on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
# the page runs only what this server sent it and talks only to this server
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# what a browser fetches before it can send a token: the page asks for one when
# /v1/models answers 401, so a server with --token lets these through without it
PUBLIC_PATHS = frozenset({"/", *(f"/static/{name}" for name in ASSETS)})


def page_routes(models: Sequence[Any]) -> list[Route]:
    """The page's routes for these served models (each with `name`, `predictor`,
    `inputs` and `outputs`, as `rnnc.serve.models.ServedModel` has them)."""
    described = {"models": [describe(model, len(models)) for model in models]}
    html = (STATIC / "index.html").read_bytes()
    assets = {name: (STATIC / name).read_bytes() for name in ASSETS}

    async def index(request: Request) -> Response:
        return Response(html, media_type="text/html; charset=utf-8", headers={**HEADERS, "Content-Security-Policy": POLICY})

    async def asset(request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        return Response(assets[name], media_type=ASSETS[name], headers=HEADERS)

    async def listing(request: Request) -> Response:
        return JSONResponse(described, headers=HEADERS)

    return [
        Route("/", index, methods=["GET"]),
        *(Route(f"/static/{name}", asset, methods=["GET"]) for name in ASSETS),
        Route("/v1/models", listing, methods=["GET"]),
    ]


def describe(model: Any, count: int) -> dict[str, Any]:
    """What the page needs to know of one served model, as JSON."""
    predictor = model.predictor
    about: dict[str, Any] = {"name": model.name}
    if hasattr(predictor, "token_ids"):  # a v1 chain: x in, y out
        about["input"] = "text" if predictor.vocab is not None else "ids" if predictor.token_ids else "sequence"
        about["output"] = "classes" if predictor.classes else "sequence" if predictor.sequence_output else "values"
        about["classes"] = predictor.classes
        about["features"] = predictor.features
        about["timesteps"] = predictor.timesteps
    else:  # a v2 graph: named inputs, given as one JSON object per instance
        named = [o for o in predictor.outputs.values() if o.classes]
        classes = list(named[0].classes) if len(predictor.outputs) == 1 and named else None
        about.update(input="json", output="classes" if classes else "values", classes=classes, features=None, timesteps=None)
    about["inputs"] = [_plain(d) for d in model.inputs]
    about["outputs"] = [_plain(d) for d in model.outputs]
    about["predict"] = "/v1/predict" if count == 1 else f"/v1/models/{quote(model.name, safe='')}/predict"
    return about


def _plain(description: Any) -> Any:
    """An input or output description as JSON (a dict, a dataclass or an object with
    name, datatype and shape)."""
    if isinstance(description, dict):
        return description
    if dataclasses.is_dataclass(description) and not isinstance(description, type):
        return dataclasses.asdict(description)
    return {key: getattr(description, key) for key in ("name", "datatype", "shape") if hasattr(description, key)}
