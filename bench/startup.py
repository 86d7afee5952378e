"""Cold start: the wall time of `rnnc check` and of `rnnc predict` as whole processes.

`rnnc check` is what an editor hook or a CI lint step runs on every save (target under
0.3 s on a 2-core machine); `rnnc predict` on one sequence is a deployment's one-off
call (target under 1 s). Each run is a fresh process, so the interpreter starts and
rnnc imports anew; the OS file cache is warm after one untimed run, as in real use.
Reported: the median with the min-max of the runs, next to a bare `python -c pass`.
The model `rnnc predict` runs is the LSTM workload's (bench/workloads.py, b), exported
with its initial weights; this script imports neither torch nor onnx itself.

    python bench/startup.py [--runs 10] [--spec specs/seed_binary.yaml]

For where the time goes: python -X importtime -m rnnc check specs/seed_binary.yaml
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"check": 0.3, "predict": 1.0}


def rnnc_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m rnnc`."""
    script = Path(sys.executable).with_name("rnnc")
    if script.exists():
        return [str(script)]
    found = shutil.which("rnnc")
    return [found] if found else [sys.executable, "-m", "rnnc"]


def wall_times(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed with status {done.returncode}:\n{done.stderr}")
    return times


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def lstm_model(folder: Path) -> Path:
    """The LSTM workload's graph and one sequence for it, made in a child process (the
    ONNX backend imports onnx, which `rnnc predict` itself never does)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); import rnnc_onnx; from rnnc.initial import initial_weights; from workloads import WORKLOADS; "
        "m = WORKLOADS['b'].model(); rnnc_onnx.export(m, initial_weights(m), sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(folder / "lstm.onnx"), str(ROOT / "bench")], check=True)
    np.save(folder / "one.npy", np.random.default_rng(0).normal(size=(1, 100, 16)).astype(np.float32))
    return folder / "lstm.onnx"


def measure(runs: int = 10, spec: Path | None = None) -> dict:
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="rnnc-startup-"))
    model = lstm_model(folder)
    commands = {
        "python": [sys.executable, "-c", "pass"],
        "check": [*rnnc_command(), "check", str(spec or ROOT / "specs" / "seed_binary.yaml")],
        "predict": [*rnnc_command(), "predict", str(model), str(folder / "one.npy"), "-o", str(folder / "out.npy")],
    }
    result: dict = {}
    for name, command in commands.items():
        wall_times(command, 1)  # fill the OS file cache, as any earlier use would have
        result[name] = summary(wall_times(command, runs if name != "predict" else max(3, runs // 2)))
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--spec", type=Path, help="the spec `rnnc check` reads (default specs/seed_binary.yaml)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.runs, args.spec)
    if args.json:
        print(json.dumps(result))
        return 0
    for name, r in result.items():
        if isinstance(r, dict):
            target = f"   target {TARGETS[name]:.1f} s: {'within' if r['median'] <= TARGETS[name] else 'OVER'}" if name in TARGETS else ""
            print(f"{name:8s} median {r['median']:.3f} s  (min {r['min']:.3f}, max {r['max']:.3f}, {r['runs']} runs){target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
