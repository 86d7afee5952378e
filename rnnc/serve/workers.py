"""`rnnc serve --workers N`: the app built afresh in each of uvicorn's worker processes.

uvicorn starts N processes that share the listening socket; each imports `app()` by
name (a factory), so each loads the models itself and runs its own batchers. What the
command line decided travels to them as JSON in one environment variable, set by
`rnnc serve` for its children only. Each worker keeps its own state: a streaming
session lives in the worker that opened it, and `/metrics` counts the worker that
answered the scrape (docs/serve.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from starlette.applications import Starlette

from .app import ServeSettings, build_app
from .models import ServedModel

CONFIG_VARIABLE = "RNNC_SERVE_WORKER_CONFIG"
FACTORY = "rnnc.serve.workers:app"


def config(paths: Sequence[str], threads: int | None, settings: ServeSettings) -> str:
    """What each worker needs to build the same app, as the JSON `app()` reads."""
    return json.dumps({"models": [str(p) for p in paths], "threads": threads, "settings": dataclasses.asdict(settings)})


def app() -> Starlette:
    """The app of one worker process, from `CONFIG_VARIABLE`."""
    raw = json.loads(os.environ[CONFIG_VARIABLE])
    fields = dict(raw["settings"])
    fields["cors_origins"] = tuple(fields.get("cors_origins", ()))
    models = [ServedModel.open(path, threads=raw["threads"]) for path in raw["models"]]
    return build_app(models, ServeSettings(**fields))
