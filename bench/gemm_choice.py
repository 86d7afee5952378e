"""The matrix products of the LSTM workload's training step, timed on every GEMM this
machine offers: what each library does at the shapes that matter, which one
rnnc_torch/cpu/gemm.py would choose, and the ceiling the products alone put on training.

Workload (b), LSTM(128) over 100 steps x 16 features, batch 64, trains one step as: the
input projection of all steps [rows, 16] x [16, 512], per step the recurrent product
[B, 128] x [128, 512] forward and [B, 512] x [512, 128] backward (100 each), and the
gradients [rows, 512] x [512, 16] (input), [512, rows] x [rows, 16] and [512, rows] x
[rows, 128] (weights), rows = 100 B. Two layouts are timed: the whole batch on all
threads (B = 64), and one shard on one thread (B = 32; with two threads rnnc splits each
batch into two such shards, cpu/shards.py). Each product runs on: torch.mm (torch's
BLAS, MKL), oneDNN (torch.ops.mkldnn._linear_pointwise, fp32), OpenBLAS (numpy's
matmul on the tensors' memory), and, for reference, torch.mm in bf16 (oneDNN's bf16
GEMM with fp32 accumulation). 2048^2 is timed alongside. Each route runs in a process
of its own (two thread pools side by side contend: measured too, `contention`, a torch
product right after a numpy one and right after a torch one). The machine is shared, so
the whole set runs `--rounds` times, interleaved, and each route's figure for a product
is its least disturbed round's (lowest median; every round's median is kept), the limit
likewise its best round's. The ceiling: samples/s if
training did nothing but these products, each on its fastest fp32 route, as a share of
the limit (bench/limit.py, sampled at the start of each round), and as a share of as
many one-thread limits as the layout has threads (a shard on one thread can reach at
most one thread's limit; on a shared machine the one-thread figures are the steadier). numpy runs without OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE (as limit.py does); the variables removed are recorded.

    python bench/gemm_choice.py [--reps 21] [--rounds 3] [--out results/gemm_choice.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNITS, STEPS, FEATURES, BATCH = 128, 100, 16, 64
GATES = 4 * UNITS
ROUTES = ("torch", "onednn", "openblas", "bf16")
FP32_ROUTES = ROUTES[:3]


def products(batch: int) -> dict[str, tuple[int, int, int, str, int]]:
    """name -> (m, k, n, layout, calls per training step): layout 'bT' is a @ W^T (W a
    [n, k] weight), 'aT' is d^T @ x (d stored [k, m]), 'n' is plain."""
    rows = STEPS * batch
    return {
        "input projection": (rows, FEATURES, GATES, "bT", 1),
        "recurrent step, forward": (batch, UNITS, GATES, "bT", STEPS),
        "recurrent step, backward": (batch, GATES, UNITS, "n", STEPS),
        "input gradient": (rows, GATES, FEATURES, "n", 1),
        "W_ih gradient": (GATES, rows, FEATURES, "aT", 1),
        "W_hh gradient": (GATES, rows, UNITS, "aT", 1),
    }


def _median_us(run: Callable[[], object], reps: int) -> dict[str, float]:
    for _ in range(3):
        run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e6)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def _operands(m: int, k: int, n: int, layout: str):  # type: ignore[no-untyped-def]
    import torch

    if layout == "bT":
        return torch.randn(m, k), torch.randn(n, k).mT
    if layout == "aT":
        return torch.randn(k, m).mT, torch.randn(k, n)
    return torch.randn(m, k), torch.randn(k, n)


def time_route(route: str, m: int, k: int, n: int, layout: str, reps: int) -> dict[str, float]:
    """`route`'s microseconds for one [m, k] x [k, n] product (this process's threads)
    and its largest error relative to float64."""
    import numpy as np
    import torch

    a, b = _operands(m, k, n, layout)
    out = torch.empty(m, n)
    an, bn, on = a.numpy(), b.numpy(), out.numpy()
    w = b.mT.contiguous() if layout != "bT" else b.mT  # oneDNN's linear takes the weight [n, k]
    a16, b16 = a.bfloat16(), b.bfloat16()
    runs = {
        "torch": lambda: torch.mm(a, b, out=out),
        "onednn": lambda: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], ""),
        "openblas": lambda: np.matmul(an, bn, out=on),
        "bf16": lambda: torch.mm(a16, b16),
    }
    reference = (a.double() @ b.double()).numpy()
    found = _median_us(runs[route], reps)
    result = runs[route]()
    value = on if route == "openblas" else np.asarray(result.float())
    found["relative_error"] = float(np.abs(value - reference).max() / max(np.abs(reference).max(), 1e-30))
    return found


def child(route: str, threads: int, batch: int, reps: int, square: int) -> dict:
    """Every product of `products(batch)` and `square`^2 on `route` and `threads` threads."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")
    torch.manual_seed(0)
    shapes = {name: shape for name, shape in products(batch).items()}
    shapes[f"{square}^2"] = (square, square, square, "n", 0)
    return {name: time_route(route, m, k, n, layout, max(3, reps // 4) if name.endswith("^2") else reps)
            for name, (m, k, n, layout, _) in shapes.items()}


def contention(threads: int, reps: int) -> dict[str, dict[str, float]]:
    """A step's torch product [64,128]x[128,512] alone, right after a numpy product and
    right after a torch product of the input projection's shape (microseconds)."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")
    a, b, out = torch.randn(64, 128), torch.randn(512, 128).mT, torch.empty(64, 512)
    x, w, y = torch.randn(6400, 16), torch.randn(16, 512), torch.empty(6400, 512)
    xn, wn, yn = x.numpy(), w.numpy(), y.numpy()

    def after(before: object) -> dict[str, float]:
        times = []
        for _ in range(reps):
            before()  # type: ignore[operator]
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append((time.perf_counter() - start) * 1e6)
        return {"median": statistics.median(times), "min": min(times), "max": max(times)}

    return {"alone": after(lambda: None), "after numpy": after(lambda: np.matmul(xn, wn, out=yn)),
            "after torch": after(lambda: torch.mm(x, w, out=y))}


def layer(threads: int, batch: int, reps: int) -> dict[str, dict[str, dict[str, float]]]:
    """The LSTM layer itself, forward and backward (microseconds): torch's kernel
    (nn.LSTM, oneDNN's) and rnnc's loop (cpu/stepwise.py), on `batch` rows and `threads`."""
    import torch
    from rnnc_torch.cpu import stepwise

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(FEATURES, UNITS, batch_first=True)
    x = torch.randn(batch, STEPS, FEATURES, requires_grad=True)
    workspace = stepwise.Workspace()
    paths = {"torch kernel": lambda: rnn(x)[1][0][-1], "rnnc loop": lambda: stepwise.run(rnn, x, None, False, workspace)}
    found = {}
    for name, forward in paths.items():
        out = forward()
        grad = torch.ones_like(out)
        found[name] = {"forward": _median_us(forward, reps),
                       "forward + backward": _median_us(lambda f=forward, g=grad: f().backward(g), reps)}
    return found


def ceiling(layout: dict, shards: int, batch: int, limit: float, flops_per_sample: float) -> dict:
    """samples/s with nothing but the products, each on its fastest fp32 route (and all on torch)."""
    step = {name: p for name, p in layout.items() if p["calls"]}
    best_us = sum(min(p["us"][r]["median"] for r in FP32_ROUTES) * p["calls"] for p in step.values())
    torch_us = sum(p["us"]["torch"]["median"] * p["calls"] for p in step.values())
    bf16_us = sum(p["us"]["bf16"]["median"] * p["calls"] for p in step.values())
    rate = {name: shards * batch / (us / 1e6) for name, us in (("best fp32", best_us), ("torch", torch_us), ("bf16", bf16_us))}
    return {"step_ms": {"best fp32": best_us / 1e3, "torch": torch_us / 1e3, "bf16": bf16_us / 1e3},
            "samples_per_s": rate,
            "percent_of_limit": {k: 100 * v * flops_per_sample / 1e9 / limit for k, v in rate.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--square", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gemm_choice.json")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # route threads batch
    args = parser.parse_args()
    if args.child:
        route, threads, batch = args.child[0], int(args.child[1]), int(args.child[2])
        if route == "contention":
            found = contention(threads, args.reps * 5)
        elif route == "layer":
            found = layer(threads, batch, args.reps)
        else:
            found = child(route, threads, batch, args.reps, args.square)
        print(json.dumps(found))
        return 0
    sys.path.insert(0, str(HERE))
    import limit
    from workloads import WORKLOADS, forward_flops

    removed = {name: os.environ[name] for name in limit.OPENBLAS_VARIABLES if name in os.environ}
    env = {k: v for k, v in os.environ.items() if k not in removed}
    load_before = os.getloadavg()
    layouts = {"whole batch": (args.threads, BATCH, 1), "one shard per thread": (1, BATCH // args.threads, args.threads)}

    def run_child(route: str, threads: int, batch: int) -> dict:
        done = subprocess.run([sys.executable, __file__, "--child", route, str(threads), str(batch), "--reps", str(args.reps),
                               "--square", str(args.square)], capture_output=True, text=True,
                              env={**env, "OMP_NUM_THREADS": str(threads)}, check=True)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    rounds: list[dict] = []  # per round: the limit, then every route's child per layout
    for _ in range(args.rounds):
        limits = limit.summarise([limit.sample(args.threads, args.square, 5)], args.threads)
        one = limits if args.threads == 1 else limit.summarise([limit.sample(1, args.square, 5)], 1)
        rounds.append({"limit": limits, "limit 1 thread": one, **{name: {route: run_child(route, threads, batch) for route in (*ROUTES, "layer")}
                                           for name, (threads, batch, _) in layouts.items()}})
    found: dict = {}
    for name, (threads, batch, shards) in layouts.items():
        # each route's least disturbed round (lowest median) for each product
        times = {route: {product: min((r[name][route][product] for r in rounds), key=lambda t: t["median"])
                         for product in rounds[0][name][route]} for route in ROUTES}
        shapes = {**products(batch), f"{args.square}^2": (args.square,) * 3 + ("n", 0)}
        found[name] = {"threads": threads, "batch": batch, "shards": shards, "products": {
            product: {"m": m, "k": k, "n": n, "calls": calls, "us": {route: times[route][product] for route in ROUTES},
                      "gflops": {route: 2 * m * k * n / times[route][product]["median"] / 1e3 for route in ROUTES},
                      "round_medians_us": {route: [r[name][route][product]["median"] for r in rounds] for route in ROUTES}}
            for product, (m, k, n, _, calls) in shapes.items()},
            "layer": {path: {part: min((r[name]["layer"][path][part] for r in rounds), key=lambda t: t["median"])
                             for part in parts} for path, parts in rounds[0][name]["layer"].items()}}
    contended = {f"{threads} thread{'s' if threads > 1 else ''}": run_child("contention", threads, 0)
                 for threads in sorted({1, args.threads})}
    limits = {}
    for key in ("limit", "limit 1 thread"):  # each the least disturbed round's
        best = max((r[key] for r in rounds), key=lambda b: b["median"])
        limits[key] = {**best, "round_medians": [r[key]["median"] for r in rounds]}
    best = limits["limit"]
    flops = 3 * forward_flops(WORKLOADS["b"])
    for entry in found.values():  # shards on one thread each: against that many one-thread limits too
        entry["ceiling"] = ceiling(entry["products"], entry["shards"], entry["batch"], best["median"], flops)
        per_thread = entry["threads"] * entry["shards"] * limits["limit 1 thread"]["median"]
        entry["ceiling"]["percent_of_one_thread_limits"] = {
            k: 100 * v * flops / 1e9 / per_thread for k, v in entry["ceiling"]["samples_per_s"].items()}
    result = {"benchmark": "gemm_choice", "cpu": cpu_model(), "isa": limit.vector_isa(), "threads": args.threads,
              "load_average": {"before": load_before, "after": os.getloadavg()}, "env_removed": removed,
              "train_flops_per_sample": flops, "limit": best, "limit_one_thread": limits["limit 1 thread"], "layouts": found, "contention": contended,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    from render_gemm_choice import table

    print(table(result))
    return 0


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())


if __name__ == "__main__":
    raise SystemExit(main())
