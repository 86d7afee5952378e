"""onnxruntime's session options and thread settings on rnnc's LSTM graph, side by side.

The LSTM workload (bench/workloads.py (b)) exported by rnnc, at batch 1 and batch 256,
under each variant below; the variants of one batch size take turns in rounds (an
untimed call, then a block of timed ones: 10 at batch 1, 3 at batch 256), so drift in
the machine's speed falls on all alike. `default` is rnnc.runtime's `session_options`
with its thread choice (1 thread for one sequence, the cores up to 8 for more, whose
workers do not spin); every other variant changes one thing. `2 sessions x 128` splits the batch in two halves run
at once on two Python threads, each in a one-thread session (onnxruntime releases the
GIL in `run`), which is what rnnc.runtime would do if it sharded batches itself.
Last, every workload at batch 256 with and without `session.intra_op.allow_spinning`,
one model alone and two models in turn (`spinning`).

    python bench/session_options.py [--rounds 30] [--json bench/results/session_options.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

import rnnc_onnx
from infer_latency import timed
from limit import vector_isa
from rnnc.initial import initial_weights
from rnnc.runtime import session_options, threads_for
from step_floor import cpu_model, load, summary
from workloads import WORKLOADS, forward_flops

Call = Callable[[], object]
SPIN, DENORMAL, BLOCK = "session.intra_op.allow_spinning", "session.set_denormal_as_zero", "session.dynamic_block_base"


def options(threads: int, entries: dict[str, str] | None = None, level: ort.GraphOptimizationLevel | None = None,
            arena: bool = True, parallel: bool = False) -> ort.SessionOptions:
    """rnnc.runtime's options for `threads`, with one thing changed."""
    made = session_options(threads)
    for key, value in (entries or {}).items():
        made.add_session_config_entry(key, value)
    if level is not None:
        made.graph_optimization_level = level
    made.enable_cpu_mem_arena = arena
    if parallel:
        made.execution_mode, made.inter_op_num_threads = ort.ExecutionMode.ORT_PARALLEL, 2
    return made


def variants(batch: int) -> dict[str, tuple[str, ort.SessionOptions]]:
    """Each variant's (model file key, session options) for `batch`."""
    n = threads_for(batch)
    other = 2 if n == 1 else 1
    found: dict[str, tuple[str, ort.SessionOptions]] = {
        "default": ("fp32", options(n)),
        f"{other} thread(s)": ("fp32", options(other)),
        "spinning": ("fp32", options(n, {SPIN: "1"})),
        f"{max(n, 2)} threads, spinning": ("fp32", options(max(n, 2), {SPIN: "1"})),
        "denormals as zero": ("fp32", options(n, {DENORMAL: "1"})),
        "basic graph optimisations": ("fp32", options(n, level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)),
        "no memory arena": ("fp32", options(n, arena=False)),
        "parallel execution mode": ("fp32", options(n, parallel=True)),
        "int8": ("int8", options(n)),
    }
    if n > 1:
        found["dynamic block base 4"] = ("fp32", options(n, {BLOCK: "4"}))
        found["int8, spinning"] = ("int8", options(n, {SPIN: "1"}))
    return found


def calls(files: dict[str, Path], batch: int, x: np.ndarray, pool: ThreadPoolExecutor) -> dict[str, Call]:
    made: dict[str, Call] = {}
    for name, (key, opts) in variants(batch).items():
        session = ort.InferenceSession(str(files[key]), opts, providers=["CPUExecutionProvider"])
        made[name] = lambda s=session: s.run(["y"], {"x": x})
    if batch > 1:
        halves = [ort.InferenceSession(str(files["fp32"]), options(1), providers=["CPUExecutionProvider"]) for _ in range(2)]
        parts = np.array_split(x, 2)

        def sharded() -> object:
            futures = [pool.submit(s.run, ["y"], {"x": part}) for s, part in zip(halves, parts, strict=True)]
            return np.concatenate([f.result()[0] for f in futures])
        made["2 sessions x 128, 1 thread each"] = sharded
    return made


def output(call: Call) -> np.ndarray:
    out = call()
    return np.asarray(out[0] if isinstance(out, list) else out)


def measure(count: int) -> dict:
    work = WORKLOADS["b"]
    model = work.model()
    weights = initial_weights(model, seed=0)
    folder = Path(tempfile.mkdtemp(prefix="rnnc-options-"))
    files = {"fp32": folder / "lstm.onnx", "int8": folder / "lstm-int8.onnx"}
    rnnc_onnx.export(model, weights, files["fp32"])
    rnnc_onnx.export(dataclasses.replace(model, export=dataclasses.replace(model.export, quantize="int8")), weights, files["int8"])
    started = time.perf_counter()
    result: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(), "cores": os.cpu_count(),
                    "isa": vector_isa(), "onnxruntime": ort.__version__, "workload": work.title, "flops": forward_flops(work),
                    "rounds": count, "load_before": load()}
    with ThreadPoolExecutor(2) as pool:
        for batch, block, reps in ((1, 10, count), (256, 3, max(2, count // 5))):
            x = work.data(batch, seed=batch)[0]
            made = calls(files, batch, x, pool)
            expected = output(made["default"])
            agree = {name: float(np.abs(output(call) - expected).max()) for name, call in made.items() if "int8" not in name}
            result[f"batch{batch}"] = {"threads": threads_for(batch), "agree": max(agree.values()),
                                       "ms": {name: summary(t, 1e3) for name, t in timed(made, reps * block, 0, block).items()}}
    result["spinning"] = spinning(folder, max(10, count // 2))
    result["load_after"], result["seconds"] = load(), time.perf_counter() - started
    return result


def spinning(folder: Path, count: int) -> dict:
    """Every workload at batch 256 on rnnc.runtime's threads, with and without spinning
    (`SPIN`): one model run call after call (`alone`), and two models of the same graph
    with other weights run in turn (`in turn`: a server holding two models; only the
    first model's calls are timed). Each setting runs in a phase of its own, its own
    sessions opened for it, because the other setting's spinning threads would slow it:
    that is what `in turn` measures. Two phases each, the order reversed the second time."""
    out = {}
    settings = (("spinning", {SPIN: "1"}), ("no spinning", {SPIN: "0"}))
    for key, work in WORKLOADS.items():
        model = work.model()
        paths = [folder / f"{work.name}-{seed}.onnx" for seed in (0, 1)]
        for seed, path in enumerate(paths):
            rnnc_onnx.export(model, initial_weights(model, seed=seed), path)
        x = work.data(256, seed=256)[0]
        feed = {"x": x} if work.lengths(x) is None else {"x": x, "lengths": work.lengths(x).astype(np.int64)}
        names = {i.name for i in ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"]).get_inputs()}
        feed = {k: v for k, v in feed.items() if k in names}
        times: dict[str, list[float]] = {f"{setting}, {case}": [] for setting, _ in settings for case in ("alone", "in turn")}
        for phase in range(2):
            for setting, entries in settings if phase == 0 else settings[::-1]:
                first, second = (ort.InferenceSession(str(p), options(threads_for(256), entries), providers=["CPUExecutionProvider"])
                                 for p in paths)
                first.run(None, feed), second.run(None, feed)
                for case in ("alone", "in turn"):
                    for _ in range(count):
                        if case == "in turn":
                            second.run(None, feed)
                        start = time.perf_counter()
                        first.run(None, feed)
                        times[f"{setting}, {case}"].append(time.perf_counter() - start)
                del first, second
        out[key] = {"name": work.name, "title": work.title, "calls": 2 * count,
                    "ms": {name: summary(t, 1e3) for name, t in times.items()}}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds at batch 1 (batch 256: a fifth as many)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    result = measure(args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    from render_session_options import table
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
