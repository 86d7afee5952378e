"""`rnnc serve RUN_DIR|MODEL.onnx...`: serve models over HTTP (uvicorn, Starlette).

Needs the `serve` extra (`pip install "rnnc[serve]"`); imported only when the command
runs, so the rest of the CLI never needs starlette. Binds 127.0.0.1 unless `--host`
says otherwise; `--token` (or `RNNC_SERVE_TOKEN`) requires `Authorization: Bearer`;
TLS with `--ssl-certfile`/`--ssl-keyfile`. SIGTERM (or Ctrl-C) stops taking requests,
finishes those in flight, then exits 0. Bad arguments or models: one line, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path
from typing import Any

from rnnc.errors import UsageError

TOKEN_VARIABLE = "RNNC_SERVE_TOKEN"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve models over HTTP: Open Inference Protocol, /v1/predict, a page (rnnc[serve])")
    parser.add_argument("models", nargs="+", metavar="RUN_DIR|MODEL.onnx", help="one or more models, each served under its spec name")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--workers", type=int, default=1, help="processes serving, each with its own models and batchers (default 1)")
    parser.add_argument("--max-batch", type=int, default=32, help="rows gathered into one onnxruntime call (1: no batching)")
    parser.add_argument("--max-delay-ms", type=float, default=2.0, help="how long a batch waits to fill (default 2 ms)")
    parser.add_argument("--max-queue", type=int, default=1024, help="requests waiting before the server answers 503")
    parser.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body in MiB (default 16)")
    parser.add_argument("--token", help=f"require Authorization: Bearer TOKEN (default: ${TOKEN_VARIABLE}, if set)")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN", help="allow browser calls from ORIGIN (repeatable)")
    parser.add_argument("--ssl-certfile", help="TLS certificate (PEM)")
    parser.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    parser.add_argument("--threads", type=int, help="onnxruntime threads per model")
    parser.add_argument("--max-sessions", type=int, default=1000, help="streaming sessions open at once (default 1000)")
    parser.add_argument("--session-idle-s", type=float, default=300.0, help="close a session unused this many seconds (default 300)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="most tokens one generate request may ask for (default 4096)")
    parser.set_defaults(run=run)


def _checked(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must lie in [0, 65535], got {args.port}")
    for flag, value in (("--workers", args.workers), ("--max-batch", args.max_batch), ("--max-queue", args.max_queue),
                        ("--max-sessions", args.max_sessions), ("--max-tokens", args.max_tokens)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if not 0 <= args.max_delay_ms <= 10_000:
        raise UsageError(f"--max-delay-ms must lie in [0, 10000], got {args.max_delay_ms}")
    if not 0 < args.session_idle_s <= 86_400:
        raise UsageError(f"--session-idle-s must lie in (0, 86400], got {args.session_idle_s}")
    if not 0 < args.max_body_mb <= 4096:
        raise UsageError(f"--max-body-mb must lie in (0, 4096], got {args.max_body_mb}")
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise UsageError("--ssl-certfile and --ssl-keyfile go together")
    for path in (args.ssl_certfile, args.ssl_keyfile):
        if path and not Path(path).is_file():
            raise UsageError(f"{path}: no such file")


def _log_access() -> None:
    """rnnc.serve's access lines (JSON, one per request) on stderr, as they are."""
    logger = logging.getLogger("rnnc.serve.access")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run(args: argparse.Namespace) -> int:
    _checked(args)
    try:
        import uvicorn

        from rnnc.serve.app import ServeSettings, build_app
        from rnnc.serve.models import ServedModel
    except ImportError as err:
        raise UsageError(f"rnnc serve needs the serve extra (pip install \"rnnc[serve]\"): {err}") from None
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE) or None
    for path in args.models:
        if not Path(path).exists():
            raise UsageError(f"{path}: no such file or directory")
    models = [ServedModel.open(path, threads=args.threads) for path in args.models]
    names = [m.name for m in models]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise UsageError(f"two models are named '{twice[0]}'; serve them from separate servers")
    settings = ServeSettings(host=args.host, port=args.port, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
                             max_queue=args.max_queue, max_body_bytes=int(args.max_body_mb * 1024 * 1024), token=token,
                             cors_origins=tuple(args.cors_origin), ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                             max_sessions=args.max_sessions, session_idle_s=args.session_idle_s, max_tokens=args.max_tokens,
                             workers=args.workers)
    options = dict(host=args.host, port=args.port, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                   log_level="info", access_log=False, timeout_graceful_shutdown=30, lifespan="auto")
    _log_access()
    if args.workers > 1:  # every worker loads the models again: these were opened to check them
        models.clear()
        from rnnc.serve import workers

        os.environ[workers.CONFIG_VARIABLE] = workers.config(args.models, args.threads, settings)
        return _supervise(options, args)
    config = uvicorn.Config(build_app(models, settings), **options)
    server = uvicorn.Server(config)
    # uvicorn drains on SIGTERM/SIGINT, then raises the signal again for the handler it
    # found: that one only notes it, so a drained stop exits 0
    previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except SystemExit:  # uvicorn could not bind; it logged why
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise UsageError(f"could not serve on {args.host}:{args.port} (see the lines above: in use, or not this machine's address?)")
    return 0


def _supervise(options: dict[str, Any], args: argparse.Namespace) -> int:
    """Run `--workers` processes under uvicorn's supervisor, which passes SIGTERM on to
    each (each drains, then exits) and exits when they have."""
    import uvicorn

    from rnnc.serve.workers import FACTORY

    try:
        uvicorn.run(FACTORY, factory=True, workers=args.workers, **options)
    except SystemExit as stop:  # uvicorn could not bind; it logged why
        if stop.code:
            raise UsageError(f"could not serve on {args.host}:{args.port} (see the lines above: in use, or not this machine's address?)") from None
    return 0
