"""Where a batch-1 LSTM step's time goes: onnxruntime's LSTM kernel, step by step, against
the machine's floors.

The LSTM workload (bench/workloads.py (b): LSTM(128) over 100 steps of 16 features) at
batch 1 is 100 sequential steps, each a [1, 128] x [128, 512] product on the recurrent
weights (256 KiB of float32, read whole every step) plus the gates on 512 values. On
one thread (rnnc.runtime's choice for one sequence):

  headline  rnnc's graph (`Predictor.run`; float32 and `export.quantize: int8`) and PyTorch
            eager on the workload, ms a call
  steps     onnxruntime's LSTM operator alone (a one-node graph) and torch.nn.LSTM,
            batch 1, units 128, over 1-200 steps: the time per step (the least-squares
            slope) and the fixed cost of a call (the intercept)
  units     the time per step for units 32-512 (weights 16 KiB - 4 MiB: L1 to L3), and
            of the same operator quantised as `export.quantize: int8` does
  batch     the time per step for batch 1-256 at units 128, and the step's product
            alone ([batch, 128] x [128, 512]: numpy's OpenBLAS, onnxruntime's MLAS)
  floors    bench/step_floor_kernels.c, built with the system's `cc`: the clock (a
            chain of dependent adds), the FMA peak, read bandwidth by cache level, and a
            plain matrix-vector step on the same weights (float32, and bfloat16 with
            AVX512_BF16), each step's input the previous step's output; numpy's sgemv
            (OpenBLAS) per call for comparison. The kernels are AVX-512 where the CPU has
            AVX512F, else AVX2 with FMA (`floors.vector_floats`: 16 or 8); on a CPU with
            neither, or without a C compiler, the floors are skipped with the reason
            (`floors: null`, `floors_skipped`)

Every figure is a median over repetitions, with its min-max (for times per step, the
10th-90th percentile); the floors take the fastest sample, since other work on the
core only slows one down; `uptime` before and after.

    python bench/step_floor.py [--quick] [--json bench/results/step_floor.json]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from rnnc.runtime import Predictor, session_options

HERE = Path(__file__).resolve().parent
STEPS = (1, 25, 50, 100, 200)
UNITS = (32, 64, 128, 256, 512)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 256)
STREAMS = {"L1 (16 KiB)": 16 << 10, "L2 (256 KiB)": 256 << 10, "L3 (8 MiB)": 8 << 20, "DRAM (256 MiB)": 256 << 20}
FEATURES = 16


def summary(values: list[float], scale: float = 1.0) -> dict[str, float]:
    return {"median": statistics.median(values) * scale, "min": min(values) * scale, "max": max(values) * scale}


def times(call: Callable[[], object], reps: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), platform.processor())


# -- onnxruntime's LSTM operator and torch's module, alone --------------------------------------------------

def lstm_session(units: int, int8: bool = False) -> ort.InferenceSession:
    """A one-node graph: `LSTM(X [steps, batch, 16]) -> Y_h`, one intra-op thread; with
    `int8`, quantised as `export.quantize: int8` does (`DynamicQuantizeLSTM`)."""
    rng = np.random.default_rng(0)
    scale = 1 / np.sqrt(units)
    w = rng.uniform(-scale, scale, (1, 4 * units, FEATURES)).astype(np.float32)
    r = rng.uniform(-scale, scale, (1, 4 * units, units)).astype(np.float32)
    b = rng.uniform(-scale, scale, (1, 8 * units)).astype(np.float32)
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["", "y"], hidden_size=units)
    graph = helper.make_graph([node], "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["steps", "batch", FEATURES])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "batch", units])],
                              [helper.make_tensor(n, TensorProto.FLOAT, a.shape, a.ravel()) for n, a in (("W", w), ("R", r), ("B", b))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if int8:
        from rnnc_onnx.quantize import quantize_int8

        model = quantize_int8(model)
    return ort.InferenceSession(model.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])


def ort_call(session: ort.InferenceSession, steps: int, batch: int) -> Callable[[], object]:
    x = np.random.default_rng(steps).normal(size=(steps, batch, FEATURES)).astype(np.float32)
    return lambda: session.run(["y"], {"x": x})


def torch_call(net: torch.nn.LSTM, steps: int) -> Callable[[], object]:
    x = torch.randn(1, steps, FEATURES)

    def call() -> object:
        with torch.inference_mode():
            return net(x)
    return call


def fit(steps: tuple[int, ...], seconds: list[float]) -> tuple[float, float]:
    """(us per step, us fixed) from median times per call at each step count."""
    slope, intercept = np.polyfit(np.array(steps, float), np.array(seconds) * 1e6, 1)
    return float(slope), float(intercept)


def per_step(make: Callable[[int], Callable[[], object]], reps: int, short: int = 10, long: int = 110) -> dict[str, float]:
    """us per step from `reps` pairs of calls at `short` and `long` steps (min-max over pairs)."""
    a, b = make(short), make(long)
    diffs = [(tb - ta) / (long - short) * 1e6 for ta, tb in zip(times(a, reps), times(b, reps), strict=True)]
    pairs = sorted(diffs)
    mid = statistics.median(pairs)
    return {"median": mid, "min": pairs[len(pairs) // 10], "max": pairs[-1 - len(pairs) // 10]}  # 10th-90th percentile


# -- the C floors -------------------------------------------------------------------------------------------

KERNEL_ISAS = (("avx512f",), ("avx2", "fma"))  # the kernels' vector paths: AVX-512, else AVX2 with FMA


def kernels_missing(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """Why bench/step_floor_kernels.c cannot be built and run here (one line), or None."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return f"no C compiler ({os.environ.get('CC', 'cc')}) for bench/step_floor_kernels.c"
    if not cpuinfo.exists():
        return None  # no flags to read: the compiler decides (kernels() names what it lacks)
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), [])
    if not any(all(flag in flags for flag in isa) for isa in KERNEL_ISAS):
        return "bench/step_floor_kernels.c needs a CPU with avx512f, or avx2 and fma (none in /proc/cpuinfo)"
    return None


def kernels(folder: Path) -> ctypes.CDLL | None:
    """bench/step_floor_kernels.c built for this CPU, or None where `kernels_missing` says
    why not; a build that still fails raises with the compiler's first error."""
    if kernels_missing() is not None:
        return None
    cc = shutil.which(os.environ.get("CC", "cc"))
    assert cc is not None
    lib = folder / "step_floor_kernels.so"
    built = subprocess.run([cc, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(lib), str(HERE / "step_floor_kernels.c")],
                           capture_output=True, text=True)
    if built.returncode != 0:
        first = next((line for line in built.stderr.splitlines() if "error" in line), built.stderr.strip()[:300])
        raise RuntimeError(f"{cc} -march=native could not build bench/step_floor_kernels.c: {first}")
    so = ctypes.CDLL(str(lib))
    so.vector_floats.argtypes, so.vector_floats.restype = [], ctypes.c_int
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    so.add_chain.argtypes, so.add_chain.restype = [i64], i64
    so.fma_peak.argtypes, so.fma_peak.restype = [i64], ctypes.c_float
    so.stream.argtypes, so.stream.restype = [ptr, i64, i64], ctypes.c_float
    for name in ("matvec", "matvec_bf16"):
        getattr(so, name).argtypes = [ptr, ptr, ptr, ctypes.c_int, ctypes.c_int, i64]
    return so


def aligned(n: int, dtype: type = np.float32) -> np.ndarray:
    """A zeroed 64-byte-aligned array of n elements."""
    size = np.dtype(dtype).itemsize
    raw = np.zeros(n + 64 // size, dtype)
    skip = (-raw.ctypes.data % 64) // size
    return raw[skip: skip + n]


def pack(r: np.ndarray, bf16: bool) -> np.ndarray:
    """r [k, n] (h @ r) as the kernels' panels: float32 [n/128][k][128]; bfloat16 (as
    uint16, rounded to nearest even) [n/128][k/2][128][2]."""
    k, n = r.shape
    panels = r.reshape(k, n // 128, 128).transpose(1, 0, 2)
    if not bf16:
        out = aligned(r.size)
        out[:] = panels.ravel()
        return out
    bits = np.ascontiguousarray(panels).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    out16 = aligned(r.size, np.uint16)
    out16[:] = rounded.reshape(n // 128, k // 2, 2, 128).transpose(0, 1, 3, 2).ravel()
    return out16


def floors(so: ctypes.CDLL, reps: int) -> dict:
    # Other work on the core only ever slows a sample down: the clock is the fastest of
    # many short samples (1 ms each), the median is kept to show how shared the core was.
    cycles_n = 200_000
    clock = [16 * cycles_n / t / 1e9 for t in times(lambda: so.add_chain(cycles_n), 10 * reps)]
    ghz = max(clock)
    fma_n = 100_000
    lanes = so.vector_floats()  # 16 (AVX-512) or 8 (AVX2)
    fma = [12 * lanes * fma_n / (t * ghz * 1e9) for t in times(lambda: so.fma_peak(fma_n), 10 * reps)]
    streams = {}
    for name, size in STREAMS.items():
        buf = aligned(size // 4)
        buf[:] = 1.0
        rounds = max(1, (64 << 20) // size)  # ~1 ms a sample where it fits in a cache, as the clock's
        secs = times(lambda b=buf, r=rounds: so.stream(b.ctypes.data, b.size, r), 5 * reps if size < (64 << 20) else 3, warmup=1)
        rates = [size * rounds / t / 1e9 for t in secs]
        streams[name] = {"gb_per_s": summary(rates), "bytes_per_cycle": max(rates) / ghz}  # the fastest sample, as the clock
    return {"vector_floats": lanes, "clock_ghz": {**summary(clock), "used": ghz}, "fma_per_cycle": summary(fma), "stream": streams}


def matvec_us(so: ctypes.CDLL, units: int, bf16: bool, reps: int) -> dict[str, float]:
    """us per step of the C kernel's h @ R (R [units, 4 units]) in a recurrence."""
    r = np.random.default_rng(units).uniform(-0.1, 0.1, (units, 4 * units)).astype(np.float32)
    packed, h, out = pack(r, bf16), aligned(units), aligned(4 * units)
    h[:] = 0.5
    steps = max(20, 50_000 // units)  # ~1 ms a sample: short enough that most samples run undisturbed
    kernel = so.matvec_bf16 if bf16 else so.matvec
    return summary(times(lambda: kernel(packed.ctypes.data, h.ctypes.data, out.ctypes.data, units, 4 * units, steps), reps),
                   1e6 / steps)


def mlas_session() -> ort.InferenceSession:
    """Ten `[batch, 128] x [128, 512]` MatMul nodes on one input, one thread: onnxruntime's
    own product (MLAS, which its LSTM calls each step), its per-call cost spread over ten."""
    r = np.full((128, 512), 0.01, np.float32)
    nodes = [helper.make_node("MatMul", ["h", "R"], [f"y{i}"]) for i in range(10)]
    graph = helper.make_graph(nodes, "products", [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", 128])],
                              [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["batch", 512]) for i in range(10)],
                              [helper.make_tensor("R", TensorProto.FLOAT, r.shape, r.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"])


def mlas_sgemm(session: ort.InferenceSession, batch: int, reps: int) -> dict[str, float]:
    h = np.full((batch, 128), 0.5, np.float32)
    return summary(times(lambda: session.run(None, {"h": h}), reps), 1e6 / 10)


def numpy_sgemm(batch: int, reps: int) -> dict[str, float]:
    """us per [batch, 128] x [128, 512] product, numpy's (OpenBLAS), 20 calls a sample."""
    h, r = np.full((batch, 128), 0.5, np.float32), np.full((128, 512), 0.01, np.float32)
    o = np.empty((batch, 512), np.float32)
    return summary(times(lambda: [np.matmul(h, r, out=o) for _ in range(20)], reps), 1e6 / 20)


def numpy_sgemv(reps: int) -> dict[str, dict[str, float]]:
    """numpy's [1, 128] x [128, 512] per call, and a [1, 1] x [1, 16] call (its per-call cost)."""
    out = {}
    for name, (k, n) in (("128x512", (128, 512)), ("1x16", (1, 16))):
        h, r, o = np.ones((1, k), np.float32), np.full((k, n), 0.01, np.float32), np.empty((1, n), np.float32)
        out[name] = summary(times(lambda h=h, r=r, o=o: [np.matmul(h, r, out=o) for _ in range(100)], reps), 1e6 / 100)
    return out


# -- the whole run ------------------------------------------------------------------------------------------

def headline(folder: Path, reps: int) -> dict:
    import rnnc_onnx
    from rnnc.initial import initial_weights
    from workloads import WORKLOADS, HandWritten  # bench/'s siblings: here, so tests load the floors alone

    work = WORKLOADS["b"]
    model = work.model()
    weights = initial_weights(model, seed=0)
    rnnc_onnx.export(model, weights, folder / "lstm.onnx")
    rnnc_onnx.export(dataclasses.replace(model, export=dataclasses.replace(model.export, quantize="int8")), weights,
                     folder / "lstm-int8.onnx")
    predictor, small = Predictor(folder / "lstm.onnx", threads=1), Predictor(folder / "lstm-int8.onnx", threads=1)
    net = HandWritten(work).load_ir_weights(weights).eval()
    x = work.data(1, seed=1)[0]
    tx = torch.from_numpy(x)

    def eager() -> object:
        with torch.inference_mode():
            return net.predict(tx, None)
    result: dict[str, list[float]] = {"rnnc": [], "rnnc int8": [], "torch": []}
    for _ in range(max(1, reps // 10)):  # turns in blocks of 10, as bench/infer_latency.py does
        for name, call in (("rnnc", lambda: predictor.run(x)), ("rnnc int8", lambda: small.run(x)), ("torch", eager)):
            result[name] += times(call, 10, warmup=1)
    return {name: summary(t, 1e3) for name, t in result.items()}


def one_blas_thread() -> object:
    """numpy's BLAS on one thread, as everything else here (threadpoolctl when installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(1, user_api="blas")


def measure(quick: bool) -> dict:
    from limit import vector_isa

    reps = 30 if quick else 100
    blas = one_blas_thread()
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="rnnc-step-floor-"))
    started, before = time.perf_counter(), load()
    result: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(), "cores": os.cpu_count(),
        "isa": vector_isa(), "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "threads": 1, "quick": quick, "load_before": before,
    }
    result["headline_ms"] = headline(folder, reps * 3)
    sessions = {u: lstm_session(u) for u in UNITS}
    medians = {"onnxruntime": [], "torch": []}
    net = torch.nn.LSTM(FEATURES, 128, batch_first=True).eval()
    for steps in STEPS:
        medians["onnxruntime"].append(statistics.median(times(ort_call(sessions[128], steps, 1), reps)))
        medians["torch"].append(statistics.median(times(torch_call(net, steps), reps)))
    result["steps"] = {"steps": list(STEPS), **{name: {"ms": [t * 1e3 for t in m], **dict(zip(("per_step_us", "fixed_us"), fit(STEPS, m)))}
                                                for name, m in medians.items()}}
    so = kernels(folder)
    result["floors"] = floors(so, reps // 3) if so else None
    if so is None:
        result["floors_skipped"] = kernels_missing()
        print(f"floors skipped: {result['floors_skipped']}", flush=True)
    result["units"] = []
    for units in UNITS:
        row = {"units": units, "weights_kib": 16 * units * units // 1024,
               "onnxruntime_us": per_step(lambda s, u=units: ort_call(sessions[u], s, 1), reps),
               "onnxruntime_int8_us": per_step(lambda s, q=lstm_session(units, int8=True): ort_call(q, s, 1), reps)}
        if so:
            row["c_fp32_us"] = matvec_us(so, units, False, reps)
            if so.has_bf16():
                row["c_bf16_us"] = matvec_us(so, units, True, reps)
        result["units"].append(row)
    products = mlas_session()
    result["batch"] = [{"batch": b, "onnxruntime_us": per_step(lambda s, b=b: ort_call(sessions[128], s, b), reps // 2 if b < 64 else reps // 6),
                        "sgemm_us": numpy_sgemm(b, reps // 3), "mlas_us": mlas_sgemm(products, b, reps // 3)} for b in BATCHES]
    result["numpy_sgemv_us"] = numpy_sgemv(reps // 3)
    result["numpy_threads"] = 1 if blas is not None else "numpy's default (threadpoolctl not installed)"
    result["load_after"], result["seconds"] = load(), time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (wider spreads)")
    parser.add_argument("--json", type=Path, help="write the results here (e.g. bench/results/step_floor.json)")
    args = parser.parse_args(argv)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    result = measure(args.quick)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    from render_step_floor import table
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
