"""The machine's limit: the best fp32 matrix product (sgemm) among the BLAS libraries
present, each measured in a process of its own, and the CPU's vector instruction sets.

"% of limit" in the benchmark tables is measured against the fastest of: numpy's BLAS
(OpenBLAS in numpy's wheels; MKL where numpy was built with it), onnxruntime's MLAS (a
one-node `MatMul` graph built with `onnx.helper`) and torch's `torch.mm` (whose BLAS
torch names in `torch.__config__`: MKL in the x86 wheels). Against torch's alone, a
system that beats torch's matmul showed as more than 100% of the limit. Each library
runs in a child process, so no other library's thread pool spins beside it. numpy's
child runs without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which a machine may set for
its test runs (one that forced an older core type halved numpy's matmul): the limit is
what the hardware does with OpenBLAS's own core detection; the variables removed are
recorded, and threadpoolctl (when installed) names the kernel that then runs.

    python bench/limit.py [--threads 2] [--size 2048] [--reps 5]     # prints the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

LIBRARIES = ("numpy", "onnxruntime", "torch")
# Set by some machines for their own reasons; never inherited by numpy's measurement.
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def vector_isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The vector instruction sets of ISA_FLAGS that the first CPU lists, in that order."""
    if not cpuinfo.exists():
        return []
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), [])
    return [flag for flag in ISA_FLAGS if flag in flags]


def _time(product: Callable[[], object], flops: float, reps: int) -> list[float]:
    for _ in range(2):
        product()
    rates = []
    for _ in range(reps):
        start = time.perf_counter()
        product()
        rates.append(flops / (time.perf_counter() - start) / 1e9)
    return rates


def _numpy(threads: int, size: int, reps: int) -> dict:
    import numpy as np

    info: dict = {"library": "numpy", "version": np.__version__, "env_seen": {k: os.environ.get(k) for k in OPENBLAS_VARIABLES}}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        info["blas"] = "unknown (threadpoolctl not installed)"
        limits = None
    else:
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        info["blas"] = ", ".join(f"{p['internal_api']} {p['version']} ({p.get('architecture', '?')} kernels)" for p in blas)
        limits = threadpool_limits(threads, user_api="blas")
    a, b = (np.random.default_rng(seed).standard_normal((size, size), dtype=np.float32) for seed in (0, 1))
    out = np.empty((size, size), np.float32)
    info["gflops"] = _time(lambda: np.matmul(a, b, out=out), 2 * size**3, reps)
    if limits is not None:
        limits.unregister()
    return info


def _onnxruntime(threads: int, size: int, reps: int) -> dict:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "sgemm",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a, b = (np.random.default_rng(seed).standard_normal((size, size), dtype=np.float32) for seed in (0, 1))
    # Inputs and output bound once: the timed call is the product, not copies.
    binding = session.io_binding()
    binding.bind_cpu_input("a", a)
    binding.bind_cpu_input("b", b)
    binding.bind_ortvalue_output("y", ort.OrtValue.ortvalue_from_numpy(np.empty((size, size), np.float32)))
    return {"library": "onnxruntime", "version": ort.__version__, "onnx": onnx.__version__, "blas": "MLAS",
            "gflops": _time(lambda: session.run_with_iobinding(binding), 2 * size**3, reps)}


def _torch(threads: int, size: int, reps: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    settings = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in settings.replace(",", " ").split() if part.startswith("BLAS_INFO=")), "unknown")
    a, b, out = torch.randn(size, size), torch.randn(size, size), torch.empty(size, size)
    return {"library": "torch", "version": torch.__version__, "blas": blas.upper() if blas == "mkl" else blas,
            "gflops": _time(lambda: torch.mm(a, b, out=out), 2 * size**3, reps)}


CHILDREN = {"numpy": _numpy, "onnxruntime": _onnxruntime, "torch": _torch}


def measure_library(library: str, threads: int, size: int = 2048, reps: int = 5) -> dict:
    """One library's sgemm GFLOP/s in a child process: `{library, version, blas, gflops: [...]}`,
    or `{library, error}` when the child fails (the library is not installed, say)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    removed = {name: env.pop(name) for name in OPENBLAS_VARIABLES if library == "numpy" and name in env}
    done = subprocess.run([sys.executable, __file__, "--child", library, "--threads", str(threads), "--size", str(size),
                           "--reps", str(reps)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        return {"library": library, "error": last}
    return {**json.loads(done.stdout), "env_removed": removed} if library == "numpy" else json.loads(done.stdout)


def sample(threads: int, size: int = 2048, reps: int = 5) -> list[dict]:
    """Every library once on `threads` threads."""
    return [measure_library(library, threads, size, reps) for library in LIBRARIES]


def summarise(samples: list[list[dict]], threads: int) -> dict:
    """Samples taken at several points of a run, merged per library; the limit is the
    library with the best median, and its median, min and max."""
    libraries: dict[str, dict] = {}
    for found in (entry for run in samples for entry in run):
        entry = libraries.setdefault(found["library"], {k: v for k, v in found.items() if k != "gflops"} | {"gflops": []})
        entry["gflops"] += found.get("gflops", [])
    for entry in libraries.values():
        if entry["gflops"]:
            rates = entry["gflops"]
            entry.update(median=statistics.median(rates), min=min(rates), max=max(rates), samples=len(rates))
    measured = [e for e in libraries.values() if "median" in e]
    if not measured:
        raise SystemExit("limit.py: no BLAS library could be measured: "
                         + "; ".join(f"{e['library']}: {e.get('error', 'no samples')}" for e in libraries.values()))
    best = max(measured, key=lambda e: e["median"])
    return {"threads": threads, "best": best["library"], "median": best["median"], "min": best["min"], "max": best["max"],
            "libraries": libraries}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--child", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.threads, args.size, args.reps)))
        return 0
    print(json.dumps({"isa": vector_isa(), "limit": summarise([sample(args.threads, args.size, args.reps)], args.threads)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
