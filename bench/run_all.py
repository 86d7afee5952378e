"""Every benchmark in one run, printed as Markdown tables: rnnc against hand-written
PyTorch, `torch.onnx.export` on onnxruntime, Keras 3 and the machine's limit.

    python bench/run_all.py                          # about 5 minutes on 2 cores
    python bench/run_all.py --quick                  # fewer repetitions, a smoke test
    RNNC_KERAS_PYTHON=/path/to/keras-venv/bin/python python bench/run_all.py
    python bench/run_all.py --json results.json --workload a b
    python bench/run_all.py --threads 1             # every system on one core

Parts, all measured in this run on this machine: the limit (fp32 `torch.mm` of two
2048x2048 matrices, GFLOP/s on all cores and on one); training throughput
(train_throughput.py); inference latency at batch 1 and throughput at batch 256
(infer_latency.py), with int8 quantisation's accuracy on a trained classifier; Keras
(keras_peer.py, in its own environment, skipped with a note when there is none: see
bench/README.md); the cold start of `rnnc check` and `rnnc predict` (startup.py). Each
system's share of the limit is its samples/s times the workload's FLOPs per sample
(counted from the IR: workloads.forward_flops; a training step counts 3x the forward
pass) over the matmul GFLOP/s of the same threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import infer_latency
import startup
import train_throughput
from workloads import KERAS, WORKLOADS

ROOT = Path(__file__).resolve().parents[1]


def matmul_rates(threads: int, size: int = 2048, reps: int = 5) -> list[float]:
    """fp32 `torch.mm` GFLOP/s of `reps` products of two size x size matrices on `threads`."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b, out = torch.randn(size, size), torch.randn(size, size), torch.empty(size, size)
        for _ in range(2):
            torch.mm(a, b, out=out)
        rates = []
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    finally:
        torch.set_num_threads(before)
    return rates


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import onnx

    import rnnc

    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": model, "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": np.__version__, "rnnc": rnnc.__version__}


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


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def span(r: dict, scale: float = 1.0, digits: int = 0) -> str:
    return f"{r['median'] * scale:.{digits}f} ({r['min'] * scale:.{digits}f}-{r['max'] * scale:.{digits}f})"


def rate_span(r: dict, batch: int) -> str:
    """Sequences/s from seconds per call: the median call, then the slowest and fastest."""
    return f"{batch / r['median']:.0f} ({batch / r['max']:.0f}-{batch / r['min']:.0f})"


def tables(results: dict) -> str:
    m, limit = results["machine"], results["limit"]
    keras = results.get("keras", {})
    out = [f"{m['date']}; {m['cpu']}, {m['cores']} cores; torch {m['torch']} ({m['torch_threads']} threads), onnxruntime "
           f"{m['onnxruntime']}, onnx {m['onnx']}, numpy {m['numpy']}, Python {m['python']}"
           + (f", Keras {keras['versions']['keras']} on TensorFlow {keras['versions']['tensorflow']}" if "versions" in keras else "")
           + f"; load average {results['load_before']:.2f} before, {results['load_after']:.2f} after; {results['seconds']:.0f} s.",
           "", f"Limit: fp32 matmul {span(limit['all'])} GFLOP/s on {limit['all']['threads']} threads, "
           f"{span(limit['one'])} on 1 (medians, min-max).", ""]
    if keras.get("error") or keras.get("note"):
        out += [f"Keras: {keras.get('error') or keras.get('note')}", ""]
    peak = limit["all"]["median"] * 1e9
    out += ["Training, samples/s (median, min-max):", "",
            "| workload | rnnc | PyTorch | Keras | rnnc / PyTorch (paired) | rnnc / Keras | MFLOP/sample | % of limit: rnnc, PyTorch, Keras |",
            "|---|---|---|---|---|---|---|---|"]
    for key, r in results.get("train", {}).items():
        k = keras.get(key, {}).get("train")
        paired = r["paired_ratio"]
        shares = [f"{100 * rate * r['train_flops'] / peak:.0f}%" for rate in (r["rnnc"]["median"], r["pytorch"]["median"])]
        shares.append(f"{100 * k['median'] * r['train_flops'] / peak:.0f}%" if k else "-")
        cells = [f"{key} {r['name']}", span(r["rnnc"]), span(r["pytorch"]), span(k) if k else "-",
                 f"{paired['median']:.2f} ({paired['min']:.2f}-{paired['max']:.2f})",
                 f"{r['rnnc']['median'] / k['median']:.2f}" if k else "-", f"{r['train_flops'] / 1e6:.3g}", ", ".join(shares)]
        out.append("| " + " | ".join(cells) + " |")
    names = ("rnnc", "rnnc int8", "torch", "torch.onnx")
    out += ["", "Inference at batch 1, ms per call (median, min-max; every contender but Keras on 1 thread, rnnc.runtime's choice):", "",
            "| workload | rnnc | rnnc int8 | PyTorch eager | torch.onnx on ORT | Keras predict_on_batch | eager / rnnc | eager / rnnc int8 | torch.onnx / rnnc |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.get("infer", {}).items():
        b = r["batch1"]
        k = keras.get(key, {}).get("batch1")
        med = {n: b[n]["median"] for n in names}
        out.append(f"| {key} {r['name']} | " + " | ".join(span(b[n], 1e3, 3) for n in names) + f" | {span(k, 1e3, 2) if k else '-'} | "
                   f"{med['torch'] / med['rnnc']:.2f} | {med['torch'] / med['rnnc int8']:.2f} | {med['torch.onnx'] / med['rnnc']:.2f} |")
    out += ["", f"Inference at batch 256, sequences/s (from the median call; slowest-fastest call) on {limit['all']['threads']} "
            "threads, and each system's % of the matmul limit:", "",
            "| workload | rnnc | rnnc int8 | PyTorch eager | torch.onnx on ORT | Keras | rnnc / torch.onnx | % of limit: rnnc, torch.onnx |",
            "|---|---|---|---|---|---|---|---|"]
    for key, r in results.get("infer", {}).items():
        b = r["batch256"]
        k = keras.get(key, {}).get("batch256")
        share = lambda seconds: f"{100 * 256 / seconds * r['flops'] / peak:.0f}%"  # noqa: E731
        out.append(f"| {key} {r['name']} | " + " | ".join(rate_span(b[n], 256) for n in names) + f" | {rate_span(k, 256) if k else '-'} | "
                   f"{b['torch.onnx']['median'] / b['rnnc']['median']:.2f} | {share(b['rnnc']['median'])}, {share(b['torch.onnx']['median'])} |")
    q = results.get("quantization")
    if q:
        out += ["", f"int8 on a trained model ({q['spec']}, {q['epochs']} epochs, {q['validation']} validation sequences): "
                f"accuracy {q['fp32']['accuracy']:.4f} float32, {q['int8']['accuracy']:.4f} int8 ({q['predictions_changed']} "
                f"predictions changed, largest probability change {q['max_probability_change']:.3f}); file "
                f"{q['fp32']['bytes']} -> {q['int8']['bytes']} bytes; batch-1 latency {span(q['fp32']['latency'], 1e3, 3)} -> "
                f"{span(q['int8']['latency'], 1e3, 3)} ms."]
    s = results.get("startup")
    if s:
        out += ["", f"Cold start, whole processes (median, min-max): `rnnc check` {span(s['check'], 1, 3)} s (target 0.3), "
                f"`rnnc predict` on one sequence {span(s['predict'], 1, 3)} s (target 1.0); `python -c pass` {span(s['python'], 1, 3)} s."]
    return "\n".join(out)


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
        print(tables(json.loads(args.render.read_text())))
        return 0
    reps, reps_1, reps_256 = (2, 60, 5) if args.quick else (args.reps, 300, 20)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    started = time.perf_counter()
    results: dict = {"machine": machine(), "load_before": os.getloadavg()[0]}
    limit: dict[str, list[float]] = {"all": [], "one": []}

    def sample_limit() -> None:  # at several points of the run: the machine's speed drifts
        limit["all"] += matmul_rates(threads)
        limit["one"] += matmul_rates(1)

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
    results["limit"] = {name: {**summary(rates), "threads": threads if name == "all" else 1} for name, rates in limit.items()}
    results["load_after"] = os.getloadavg()[0]
    results["seconds"] = time.perf_counter() - started
    print(tables(results), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
