"""Inference latency: rnnc's ONNX graph on onnxruntime against PyTorch.

The model: LSTM(128) over 100 steps of 16 features, then dense(10) with softmax. Four
ways to run it, with the same weights and the same number of intra-op threads (what
rnnc.runtime picks for the batch: 1 for one sequence, else the cores up to 8):

  rnnc/ort         the graph rnnc_onnx.lower builds, through rnnc.runtime's session settings
  torch eager      a hand-written nn.LSTM + nn.Linear + softmax, under torch.inference_mode
  rnnc_torch       rnnc's own torch module (rnnc_torch.build_module), same mode
  torch.onnx/ort   torch.onnx.export of the hand-written model (dynamic batch and time),
                   on onnxruntime with rnnc.runtime's session settings

at batch 1 and batch 256: median and min-max of one call over many repetitions after
a warm-up (on one thread the contenders take turns call by call; with thread pools
each runs its calls in a block). Then the cold start of `rnnc predict` on one sequence, as a whole process
(median of 5), next to a bare `python -c pass` and `python -c 'import torch'`. Needs
torch (the baselines). `--sweep` times rnnc's graph alone by batch size and threads.

    python bench/infer_latency.py [--threads N] [--reps-1 300] [--reps-256 40] [--sweep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

import rnnc_onnx
import rnnc_torch
from rnnc import ir
from rnnc.runtime import Predictor, session_options, threads_for
from rnnc.shapes import infer_nodes

STEPS, FEATURES, UNITS, CLASSES = 100, 16, 128, 10


def ir_model() -> ir.Model:
    input_ = ir.Input((STEPS, FEATURES))
    nodes, problems = infer_nodes(input_, [ir.LSTM(UNITS), ir.Dense(CLASSES, "softmax")])
    assert not problems
    return ir.Model("bench-lstm", input_, tuple(nodes), ir.Loss("categorical_crossentropy"), ir.Optimizer("adam"))


class HandWritten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, UNITS, batch_first=True)
        self.head = nn.Linear(UNITS, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return torch.softmax(self.head(h[-1]), dim=-1)


def hand_written(weights: dict[str, np.ndarray]) -> HandWritten:
    module = HandWritten().eval()
    t = {k: torch.from_numpy(v) for k, v in weights.items()}
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(module.lstm, f"{name}_l0").copy_(t[f"layers.0.{name}"])
        module.head.weight.copy_(t["layers.1.weight"])
        module.head.bias.copy_(t["layers.1.bias"])
    return module


def timed(fn, reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved(fns: dict[str, object], reps: int, warmup: int, turns: bool) -> dict[str, list[float]]:
    """With `turns`, each contender runs once per round, round after round, so drift in
    the machine's speed falls on all alike; that suits one thread. With thread pools,
    each contender runs all its calls in a block: a pool keeps spinning a while after a
    call and would steal the next contender's cores."""
    if not turns:
        return {name: timed(fn, reps, warmup) for name, fn in fns.items()}
    for fn in fns.values():
        for _ in range(warmup):
            fn()  # type: ignore[operator]
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            times[name].append(time.perf_counter() - start)
    return times


def show(name: str, times: list[float]) -> float:
    med = statistics.median(times)
    print(f"  {name:<16} median {med * 1e3:8.3f} ms   min {min(times) * 1e3:8.3f}   max {max(times) * 1e3:8.3f}")
    return med


def cold_start(model_path: Path, folder: Path, runs: int = 5) -> tuple[float, float, float]:
    x = folder / "one.npy"
    np.save(x, np.random.default_rng(0).normal(size=(1, STEPS, FEATURES)).astype(np.float32))
    predict = [sys.executable, "-m", "rnnc", "predict", str(model_path), str(x), "-o", str(folder / "out.npy")]

    def whole(cmd: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - start

    whole(predict)  # the first run also warms the file cache
    def median(cmd: list[str]) -> float:
        return statistics.median(whole(cmd) for _ in range(runs))

    return median(predict), median([sys.executable, "-c", "pass"]), median([sys.executable, "-c", "import torch"])


def sweep() -> None:
    """rnnc/ort's median per call by batch size and intra-op threads: where more threads
    start to pay (rnnc.runtime's SMALL_BATCH)."""
    model = ir_model()
    proto = rnnc_onnx.lower(model, rnnc_onnx.initial_weights(model)).SerializeToString()
    counts = sorted({1, 2, 4, min(os.cpu_count() or 1, 8)})
    sessions = {n: ort.InferenceSession(proto, session_options(n), providers=["CPUExecutionProvider"]) for n in counts}
    print("batch  " + "  ".join(f"{n:>2} thread(s)" for n in counts))
    for batch in (1, 2, 4, 8, 16, 32, 64):
        x = np.random.default_rng(batch).normal(size=(batch, STEPS, FEATURES)).astype(np.float32)
        cells = [statistics.median(timed(lambda s=s: s.run(["y"], {"x": x}), 100, 10)) * 1e3 for s in sessions.values()]
        print(f"{batch:>5}  " + "  ".join(f"{c:9.3f} ms" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="threads for both runtimes (default: rnnc.runtime's)")
    parser.add_argument("--reps-1", type=int, default=300)
    parser.add_argument("--reps-256", type=int, default=40)
    parser.add_argument("--sweep", action="store_true", help="only time rnnc/ort over batch sizes and thread counts")
    args = parser.parse_args()
    if args.sweep:
        sweep()
        return

    model = ir_model()
    weights = rnnc_onnx.initial_weights(model, seed=0)
    folder = Path(tempfile.mkdtemp(prefix="rnnc-bench-"))
    rnnc_onnx.export(model, weights, folder / "rnnc.onnx")
    predictor = Predictor(folder / "rnnc.onnx", threads=args.threads)

    eager = hand_written(weights)
    spec_module = rnnc_torch.build_module(model)
    spec_module.load_ir_state(weights)
    spec_module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            eager, (torch.zeros(1, STEPS, FEATURES),), str(folder / "torch.onnx"), dynamo=False,
            input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch"}},
            opset_version=17,
        )

    print(f"LSTM({UNITS}) over {STEPS} steps of {FEATURES} features, dense({CLASSES}) softmax; "
          f"onnxruntime {ort.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    for batch, reps in ((1, args.reps_1), (256, args.reps_256)):
        threads = args.threads or threads_for(batch)  # the same for every contender
        torch.set_num_threads(threads)
        rnnc_session = predictor.session_for(batch)
        torch_session = ort.InferenceSession(
            str(folder / "torch.onnx"), session_options(threads), providers=["CPUExecutionProvider"]
        )
        x = np.random.default_rng(batch).normal(size=(batch, STEPS, FEATURES)).astype(np.float32)
        tx = torch.from_numpy(x)
        outs = {
            "rnnc/ort": rnnc_session.run(["y"], {"x": x})[0],
            "torch.onnx/ort": torch_session.run(["y"], {"x": x})[0],
        }
        with torch.inference_mode():
            outs["torch eager"] = eager(tx).numpy()
            outs["rnnc_torch"] = spec_module(tx).numpy()
        agree = max(float(np.abs(v - outs["torch eager"]).max()) for v in outs.values())
        print(f"batch {batch}, {threads} thread(s) (outputs agree to {agree:.1e}):")
        warm = max(5, reps // 10)
        with torch.inference_mode():
            times = interleaved(
                {
                    "rnnc/ort": lambda: rnnc_session.run(["y"], {"x": x}),
                    "torch eager": lambda: eager(tx),
                    "rnnc_torch": lambda: spec_module(tx),
                    "torch.onnx/ort": lambda: torch_session.run(["y"], {"x": x}),
                },
                reps,
                warm,
                turns=threads == 1,
            )
        medians = {name: show(name, t) for name, t in times.items()}
        mine = medians["rnnc/ort"]
        print("  speed-up of rnnc/ort: " + ", ".join(f"{v / mine:.2f}x vs {k}" for k, v in medians.items() if k != "rnnc/ort"))

    predict, bare, torch_import = cold_start(folder / "rnnc.onnx", folder)
    print(f"cold start, `rnnc predict` on one sequence as a whole process: median {predict * 1e3:.0f} ms "
          f"(a bare `python -c pass`: {bare * 1e3:.0f} ms; `python -c 'import torch'`: {torch_import * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
