"""Inference: rnnc's ONNX graph on onnxruntime against PyTorch, latency and throughput.

For each workload (bench/workloads.py), with the same weights (rnnc's initial ones) and
the same number of intra-op threads for every contender (what rnnc.runtime picks for
the batch: 1 for one sequence, the cores up to 8 for more):

  rnnc         `rnnc.runtime.Predictor.run` on rnnc's graph (its input checks included)
  rnnc int8    the same, exported with `export.quantize: int8`
  torch        the hand-written PyTorch module, under `torch.inference_mode`
  torch.onnx   `torch.onnx.export` of the hand-written module, on onnxruntime with
               rnnc.runtime's session options

at batch 1 (latency: the median time of one call, with the min-max) and batch 256
(throughput: sequences/s from the median call). The contenders take turns in rounds,
each an untimed call then a block of timed ones (10 at batch 1, 5 at batch 256), so
drift in the machine's speed falls on all alike while each runs with its own weights
in the caches (taking turns call by call, every call would find the caches holding the
others' weights: that made PyTorch eager 20% slower on the LSTM). Then
`quantization`: specs/lstm_classifier.yaml trained with `fit`, exported float32 and
int8, their validation accuracy and batch-1 latency.

    python bench/infer_latency.py [--workload b] [--reps-1 300] [--reps-256 20] [--json]
    python bench/infer_latency.py --sweep      # rnnc's graph alone by batch size and threads
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import rnnc_onnx
from rnnc import ir
from rnnc.initial import initial_weights
from rnnc.runtime import Predictor, session_options, threads_for
from workloads import WORKLOADS, HandWritten, Workload, forward_flops

ROOT = Path(__file__).resolve().parents[1]
Call = Callable[[], object]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """torch.onnx.export's C++ shape-inference warnings bypass Python's warnings."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class Wrapped(torch.nn.Module):
    """The hand-written module with its final activation, `(x[, lengths]) -> y`, for export."""

    def __init__(self, net: HandWritten):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.predict(x, lengths)


def int8(model: ir.Model) -> ir.Model:
    return dataclasses.replace(model, export=dataclasses.replace(model.export, quantize="int8"))


def contenders(work: Workload, folder: Path, x: np.ndarray, threads: int) -> tuple[dict[str, Call], dict[str, np.ndarray]]:
    """Each contender's call on `x`, and what each outputs (to check they agree)."""
    model = work.model()
    weights = initial_weights(model, seed=0)
    rnnc_onnx.export(model, weights, folder / f"{work.name}.onnx")
    rnnc_onnx.export(int8(model), weights, folder / f"{work.name}-int8.onnx")
    net = HandWritten(work).load_ir_weights(weights).eval()
    found = work.lengths(x)
    lengths = None if found is None else torch.from_numpy(found)
    tx = torch.from_numpy(x)
    onnx_path = folder / f"{work.name}-torch.onnx"
    if not onnx_path.exists():
        names = ["x", "lengths"] if lengths is not None else ["x"]
        axes = {"x": {0: "batch", 1: "time"}, "y": {0: "batch"}, **({"lengths": {0: "batch"}} if lengths is not None else {})}
        with quiet_stderr():
            torch.onnx.export(Wrapped(net), (tx, lengths) if lengths is not None else (tx,), str(onnx_path), dynamo=False,
                              input_names=names, output_names=["y"], dynamic_axes=axes, opset_version=17)
    torch_session = ort.InferenceSession(str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"])
    feed = {"x": x} if lengths is None else {"x": x, "lengths": found}
    fp32 = Predictor(folder / f"{work.name}.onnx", threads=threads)
    small = Predictor(folder / f"{work.name}-int8.onnx", threads=threads)

    def eager() -> torch.Tensor:
        with torch.inference_mode():
            return net.predict(tx, lengths)

    calls: dict[str, Call] = {
        "rnnc": lambda: fp32.run(x),
        "rnnc int8": lambda: small.run(x),
        "torch": eager,
        "torch.onnx": lambda: torch_session.run(["y"], feed),
    }
    outputs = {"rnnc": fp32.run(x), "rnnc int8": small.run(x), "torch": eager().numpy(),
               "torch.onnx": torch_session.run(["y"], feed)[0]}
    return calls, outputs


def timed(calls: dict[str, Call], reps: int, warmup: int, block: int = 10) -> dict[str, list[float]]:
    """Seconds per call of each contender: rounds in which each takes its turn for one
    untimed call and `block` timed ones. Rounds spread drift in the machine's speed over
    all alike; blocks let each contender run with its own weights in the caches and
    without the previous one's thread pool still spinning, as it would in service."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(warmup):
            call()
    for _ in range(-(-reps // block)):
        for name, call in calls.items():
            call()
            for _ in range(block):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return times


def sweep() -> None:
    """rnnc's graph alone, ms per call by batch size and intra-op threads, for the LSTM
    workload: where more threads start to pay (rnnc.runtime's `threads_for`)."""
    work = WORKLOADS["b"]
    folder = Path(tempfile.mkdtemp(prefix="rnnc-sweep-"))
    model = work.model()
    rnnc_onnx.export(model, initial_weights(model), folder / "lstm.onnx")
    counts = sorted({1, 2, 4, min(os.cpu_count() or 1, 8)})
    sessions = {n: ort.InferenceSession(str(folder / "lstm.onnx"), session_options(n), providers=["CPUExecutionProvider"]) for n in counts}
    print("batch  " + "  ".join(f"{n:>2} thread(s)" for n in counts))
    for batch in (1, 2, 4, 8, 16, 32, 64):
        x = work.data(batch, seed=batch)[0]
        cells = [statistics.median(timed({"s": lambda s=s: s.run(["y"], {"x": x})}, 100, 10)["s"]) * 1e3
                 for s in sessions.values()]
        print(f"{batch:>5}  " + "  ".join(f"{c:9.3f} ms" for c in cells))


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(work: Workload, folder: Path, reps_1: int = 300, reps_256: int = 20, threads_256: int | None = None) -> dict:
    """Batch-1 latency and batch-256 throughput of every contender on `work`; batch 256
    on `threads_256` threads (default: rnnc.runtime's choice, the cores up to 8)."""
    started = time.perf_counter()
    result: dict = {"workload": work.key, "name": work.name, "flops": forward_flops(work)}
    before = torch.get_num_threads()
    try:
        for batch, reps in ((1, reps_1), (256, reps_256)):
            threads = threads_for(batch) if batch == 1 or threads_256 is None else threads_256
            torch.set_num_threads(threads)
            x = work.data(batch, seed=batch)[0]
            calls, outputs = contenders(work, folder, x, threads)
            agree = max(float(np.abs(outputs[name] - outputs["torch"]).max()) for name in ("rnnc", "torch.onnx"))
            times = timed(calls, reps, max(5, reps // 10), block=10 if batch == 1 else 5)
            result[f"batch{batch}"] = {"threads": threads, "agree": agree,
                                       "int8_error": float(np.abs(outputs["rnnc int8"] - outputs["rnnc"]).max()),
                                       **{name: summary(t) for name, t in times.items()}}
    finally:
        torch.set_num_threads(before)
    result["seconds"] = time.perf_counter() - started
    return result


def quantization(folder: Path) -> dict:
    """specs/lstm_classifier.yaml trained, then exported float32 and int8: validation
    accuracy, the largest probability change, the files' sizes and batch-1 latency."""
    from rnnc.data import load_training_data
    from rnnc.spec import load_model
    from rnnc_torch.fit import fit

    started = time.perf_counter()
    model = load_model(ROOT / "specs" / "lstm_classifier.yaml")
    history = fit(model, device="cpu", progress=False, verbose=False)
    weights = history.weights()
    val = load_training_data(model).validation
    assert val is not None
    result: dict = {"spec": "specs/lstm_classifier.yaml", "epochs": len(history), "validation": len(val.x)}
    probs = {}
    for name, variant in (("fp32", model), ("int8", int8(model))):
        path = folder / f"classifier-{name}.onnx"
        rnnc_onnx.export(variant, weights, path)
        predictor = Predictor(path)
        probs[name] = predictor.predict(val.x)
        one = val.x[:1]
        latency = timed({name: lambda p=predictor, one=one: p.run(one)}, 300, 30)[name]
        result[name] = {"accuracy": float((probs[name].argmax(axis=1) == val.y).mean()), "bytes": path.stat().st_size,
                        "latency": summary(latency)}
    result["max_probability_change"] = float(np.abs(probs["int8"] - probs["fp32"]).max())
    result["predictions_changed"] = int((probs["int8"].argmax(axis=1) != probs["fp32"].argmax(axis=1)).sum())
    result["seconds"] = time.perf_counter() - started
    return result


def report(result: dict) -> str:
    lines = [f"({result['workload']}) {WORKLOADS[result['workload']].title}"]
    for batch in (1, 256):
        part = result[f"batch{batch}"]
        lines.append(f"  batch {batch}, {part['threads']} thread(s); outputs agree to {part['agree']:.1e}, "
                     f"int8 differs by {part['int8_error']:.1e}")
        for name in ("rnnc", "rnnc int8", "torch", "torch.onnx"):
            r = part[name]
            rate = f"   {batch / r['median']:9.0f} seq/s" if batch > 1 else ""
            lines.append(f"    {name:11s} median {r['median'] * 1e3:8.3f} ms  (min {r['min'] * 1e3:.3f}, max {r['max'] * 1e3:.3f}){rate}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--reps-1", type=int, default=300)
    parser.add_argument("--reps-256", type=int, default=20)
    parser.add_argument("--no-quantization", action="store_true", help="skip training the classifier for the int8 accuracy check")
    parser.add_argument("--sweep", action="store_true", help="only rnnc's LSTM graph by batch size and thread count")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.sweep:
        sweep()
        return 0
    folder = Path(tempfile.mkdtemp(prefix="rnnc-bench-"))
    for key in list(WORKLOADS) if args.workload == "all" else [args.workload]:
        result = measure(WORKLOADS[key], folder, args.reps_1, args.reps_256)
        print(json.dumps(result) if args.json else report(result), flush=True)
    if not args.no_quantization:
        result = quantization(folder)
        print(json.dumps(result) if args.json else json.dumps(result, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
