"""`rnnc serve` under load: 1, 16 and 64 concurrent clients, with dynamic batching, without,
and a plain Starlette + onnxruntime server written here.

One model with random weights (LSTM(64) over 20 steps of 16 features, dense(4) softmax;
`--units 128 --steps 100` is the LSTM workload of the other benchmarks), exported by rnnc_onnx. Each server runs in a process of its own (uvicorn, one worker):
`rnnc serve --max-batch 32 --max-delay-ms 2` ("rnnc, batched"), `rnnc serve --max-batch 1`
("rnnc, unbatched"), each with onnxruntime's default threads and with `--threads 1`, and `plain`: one Starlette route that parses the same Open Inference
Protocol JSON and runs one onnxruntime session in the thread pool per request. Clients are
httpx async clients in this process, each sending one-row JSON infer requests back to back
for `--seconds` per cell; requests/s, latency median and 99th percentile, and any non-200.
The answers of every server are checked equal (to 1e-5) before anything is timed.

    python bench/serve_load.py --json bench/results/serve_load.json && python bench/render.py
    python bench/serve_load.py --units 128 --steps 100 --json bench/results/serve_load_lstm128.json
    python bench/serve_load.py --quick            # a smoke test: 1 s per cell
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES, CLASSES = 16, 4
CLIENTS = (1, 16, 64)
PLAIN = "plain"
CONTENDERS = {"rnnc, batched": ["--max-batch", "32"], "rnnc, batched, --threads 1": ["--max-batch", "32", "--threads", "1"],
              "rnnc, unbatched": ["--max-batch", "1"], "rnnc, unbatched, --threads 1": ["--max-batch", "1", "--threads", "1"],
              PLAIN: []}


def export(folder: Path, steps: int, units: int) -> Path:
    import rnnc_onnx

    from rnnc.initial import initial_weights
    from rnnc.spec import model_from_mapping

    model = model_from_mapping({"rnnc": 1, "name": "load", "input": {"shape": [steps, FEATURES]},
                                "layers": [{"type": "lstm", "units": units}, {"type": "dense", "units": CLASSES, "activation": "softmax"}],
                                "loss": "sparse_categorical_crossentropy", "optimizer": "adam"})
    path = folder / "load.onnx"
    rnnc_onnx.export(model, initial_weights(model, seed=0), path)
    return path


def plain_app(model: str):  # type: ignore[no-untyped-def]
    """The plain server: the OIP JSON in, one onnxruntime run per request, JSON out."""
    import onnxruntime as ort
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    async def infer(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        feeds = {t["name"]: np.asarray(t["data"], np.float32 if t["datatype"] == "FP32" else np.int64).reshape(t["shape"])
                 for t in body["inputs"] if t["name"] in names}
        y = (await run_in_threadpool(session.run, None, feeds))[0]
        return JSONResponse({"model_name": "load", "outputs": [{"name": "y", "datatype": "FP32", "shape": list(y.shape),
                                                               "data": y.ravel().tolist()}]})
    return Starlette(routes=[Route("/v2/models/load/infer", infer, methods=["POST"])])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(name: str, model: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if name == PLAIN:
        cmd = [sys.executable, __file__, "--plain-server", str(model), "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "rnnc", "serve", str(model), "--port", str(port), "--max-delay-ms", "2", *CONTENDERS[name]]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"serve_load: the {name} server exited ({proc.returncode}) before listening")
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"serve_load: the {name} server did not listen within 60 s")


def body(x: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}).encode()


async def answer(url: str, x: np.ndarray) -> np.ndarray:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.post("/v2/models/load/infer", content=body(x), headers={"Content-Type": "application/json"})
        r.raise_for_status()
        out = r.json()["outputs"][0]
        return np.asarray(out["data"], np.float32).reshape(out["shape"])


async def load(url: str, clients: int, seconds: float, payloads: list[bytes]) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        for p in payloads[:2]:  # warm-up
            await client.post("/v2/models/load/infer", content=p, headers={"Content-Type": "application/json"})
        stop = time.perf_counter() + seconds

        async def one(k: int) -> None:
            nonlocal failed
            i = k
            while time.perf_counter() < stop:
                began = time.perf_counter()
                r = await client.post("/v2/models/load/infer", content=payloads[i % len(payloads)],
                                      headers={"Content-Type": "application/json"})
                latencies.append(time.perf_counter() - began)
                failed += r.status_code != 200
                i += clients
        began = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(clients)))
        took = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000
    return {"requests": len(ms), "per_second": len(ms) / took, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed load per cell (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 s per cell")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--steps", type=int, default=20, help="steps a request (default 20)")
    parser.add_argument("--units", type=int, default=64, help="the LSTM's units (default 64)")
    parser.add_argument("--plain-server", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_server:
        import uvicorn

        uvicorn.run(plain_app(args.plain_server), host="127.0.0.1", port=args.port, log_level="warning")
        return 0
    import onnxruntime
    seconds = 1.0 if args.quick else args.seconds
    rng = np.random.default_rng(0)
    rows = [rng.standard_normal((1, args.steps, FEATURES)).astype(np.float32) for _ in range(64)]
    payloads = [body(x) for x in rows]
    load_before, began = os.getloadavg()[0], time.perf_counter()
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = export(Path(tmp), args.steps, args.units)
        reference = None
        for name in CONTENDERS:
            proc, url = start(name, model)
            try:
                got = asyncio.run(answer(url, np.concatenate(rows[:4])))
                if reference is None:
                    reference = got
                elif not np.allclose(got, reference, atol=1e-5, rtol=0):
                    raise SystemExit(f"serve_load: {name} answered differently from rnnc, batched")
                results[name] = {str(c): asyncio.run(load(url, c, seconds, payloads)) for c in CLIENTS}
                print(name, {c: round(r["per_second"]) for c, r in results[name].items()}, file=sys.stderr)
            finally:
                proc.terminate()
                proc.wait(30)
    out = {"machine": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count(), "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
           "settings": {"seconds": seconds, "quick": args.quick, "clients": list(CLIENTS), "max_batch": 32, "max_delay_ms": 2},
           "model": {"steps": args.steps, "features": FEATURES, "lstm": args.units, "classes": CLASSES},
           "load_before": load_before, "load_after": os.getloadavg()[0], "seconds": time.perf_counter() - began,
           "results": results}
    text = json.dumps(out, indent=1)
    if args.json:
        from rnnc.artifacts import atomic_write_bytes
        atomic_write_bytes(args.json, (text + "\n").encode())
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
