"""Every benchmark in one run, printed as Markdown tables: rnnc against hand-written
PyTorch, `torch.onnx.export` on onnxruntime, Keras 3 and the machine's limit.

    python bench/run_all.py --json bench/results/run_all.json && python bench/render.py   # refresh bench/README.md
    python bench/run_all.py --quick                  # fewer repetitions, a smoke test
    RNNC_KERAS_PYTHON=/path/to/keras-venv/bin/python python bench/run_all.py
    python bench/run_all.py --json results.json --workload a b
    python bench/run_all.py --threads 1             # every system on one core

Parts, all measured in this run on this machine: the limit (limit.py: the best fp32
sgemm among numpy's BLAS, onnxruntime's MLAS and torch's BLAS, on all cores and on one,
sampled at three points of the run); training throughput
(train_throughput.py); inference latency at batch 1 and throughput at batch 256
(infer_latency.py), with int8 quantisation's accuracy on a trained classifier; Keras
(keras_peer.py, in its own environment, skipped with a note when there is none: see
bench/README.md); the cold start of `rnnc check` and `rnnc predict` (startup.py). Each
system's share of the limit is its samples/s times the workload's FLOPs per sample
(counted from the IR: workloads.forward_flops; a training step counts 3x the forward
pass) over the limit's GFLOP/s on the same threads. The tables are render.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import infer_latency
import limit
import render
import startup
import train_throughput
from workloads import KERAS, WORKLOADS

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import onnx

    import rnnc

    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": model, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": np.__version__, "rnnc": rnnc.__version__,
            "isa": limit.vector_isa(), "openblas_env": {k: os.environ[k] for k in limit.OPENBLAS_VARIABLES if k in os.environ}}


def keras_python(flag: str | None) -> str | None:
    candidate = flag or os.environ.get("RNNC_KERAS_PYTHON") or str(ROOT / "bench" / ".keras-venv" / "bin" / "python")
    return candidate if Path(candidate).exists() else None


def run_keras(python: str, keys: list[str], reps: int, reps_1: int, reps_256: int, threads: int | None) -> dict:
    """keras_peer.py in the Keras environment, on the workloads' own data."""
    folder = Path(tempfile.mkdtemp(prefix="rnnc-keras-"))
    plans = {}
    for key in keys:
        work = WORKLOADS[key]
        x, y = work.data()
        np.savez(folder / f"{key}.npz", x=x, y=y, x1=work.data(1, seed=1)[0], x256=work.data(256, seed=256)[0])
        plans[key] = {**KERAS[key], "batch": work.batch, "warmup": 1, "reps": reps, "reps_1": reps_1, "reps_256": reps_256,
                      "threads": threads}
    (folder / "plan.json").write_text(json.dumps(plans))
    done = subprocess.run([python, str(ROOT / "bench" / "keras_peer.py"), str(folder)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ""})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {"versions": lines[0]["versions"], **{row["workload"]: row for row in lines[1:]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--reps", type=int, default=5, help="timed training epochs of each system (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 training epochs, fewer inference calls")
    parser.add_argument("--keras-python", help="the Keras environment's interpreter (default $RNNC_KERAS_PYTHON)")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--threads", type=int, help="intra-op threads for every system (default: the cores)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--render", type=Path, help="only print the tables of an earlier run's --json file")
    args = parser.parse_args()
    if args.render:
        print(render.run_all_tables(json.loads(args.render.read_text())))
        return 0
    reps, reps_1, reps_256 = (2, 60, 5) if args.quick else (args.reps, 300, 20)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    started = time.perf_counter()
    results: dict = {"machine": machine(), "load_before": os.getloadavg()[0], "load_during": [],
                     "settings": {"arguments": " ".join(sys.argv[1:]), "quick": args.quick, "reps": reps, "reps_1": reps_1,
                                  "reps_256": reps_256, "workloads": args.workload}}
    samples: dict[str, list] = {"all": [], "one": []}

    def sample_limit() -> None:  # at several points of the run: the machine's speed drifts
        results["load_during"].append(os.getloadavg()[0])
        samples["all"].append(limit.sample(threads))
        samples["one"].append(limit.sample(1) if threads != 1 else samples["all"][-1])

    sample_limit()
    device = torch.device("cpu")
    results["train"] = {}
    for key in args.workload:
        results["train"][key] = train_throughput.measure(WORKLOADS[key], device, reps)
        print(train_throughput.report(results["train"][key]), file=sys.stderr, flush=True)
    sample_limit()
    folder = Path(tempfile.mkdtemp(prefix="rnnc-bench-"))
    results["infer"] = {}
    for key in args.workload:
        results["infer"][key] = infer_latency.measure(WORKLOADS[key], folder, reps_1, reps_256, threads_256=args.threads)
        print(infer_latency.report(results["infer"][key]), file=sys.stderr, flush=True)
    sample_limit()
    results["quantization"] = infer_latency.quantization(folder)
    python = None if args.no_keras else keras_python(args.keras_python)
    if python is None:
        results["keras"] = {"note": "skipped: no Keras environment (set RNNC_KERAS_PYTHON or --keras-python; see bench/README.md)"}
    else:
        results["keras"] = run_keras(python, args.workload, max(2, reps - 2), max(30, reps_1 // 3), max(5, reps_256 // 2), args.threads)
    results["startup"] = startup.measure(runs=5 if args.quick else 10)
    results["limit"] = {name: {**limit.summarise(found, threads if name == "all" else 1), "size": 2048, "points": len(found)}
                        for name, found in samples.items()}
    results["load_after"] = os.getloadavg()[0]
    results["seconds"] = time.perf_counter() - started
    print(render.run_all_tables(results), flush=True)
    if args.json:
        render.write_atomically(args.json, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
