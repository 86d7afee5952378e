"""How long `rnnc check` takes now that it reads the data files: the shipped specs, and a
spec whose training file is a 1 GB `.npz` (stored and compressed).

`rnnc check` reads each `.npy` header inside the archive and never the arrays, so its
time should not grow with the file: the targets are 0.3 s for a shipped spec and 1 s
for the 1 GB file, each as a whole process (interpreter start and imports included,
the way an editor hook or a CI step runs it). It is also timed in-process
(`rnnc.cli.main(["check", ...])`, imports already done), which is the part that reads
the files. The archive is `np.savez` of float32 zeros `[N, 100, 10]` plus `y`, in a
temporary folder removed afterwards; the OS file cache is warm after one untimed run,
as in real use (the spec was just saved). Reported: medians with min-max.

    python bench/check_speed.py [--runs 10] [--gigabytes 1] [--json bench/results/check_speed.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnc.cli import main as rnnc_main
from render import check_speed_table as report  # bench/README.md's table, rendered from the JSON

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "check_speed.json"
TARGETS = {"shipped": 0.3, "npz": 1.0}  # seconds, whole process
STEPS, FEATURES = 100, 10
SPEC = f"""\
rnnc: 1
name: big
input: {{shape: [{STEPS}, {FEATURES}]}}
layers:
  - {{type: lstm, units: 32}}
  - {{type: dense, units: 1, activation: sigmoid}}
loss: binary_crossentropy
optimizer: adam
data:
  train: big.npz
"""


def rnnc_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m rnnc`."""
    script = Path(sys.executable).with_name("rnnc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rnnc"]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def in_process(spec: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs + 1):  # the first imports rnnc's modules and fills the file cache
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            status = rnnc_main(["check", "-q", str(spec)])
        times.append(time.perf_counter() - start)
        if status != 0:
            sys.exit(f"rnnc check {spec} failed:\n{err.getvalue()}")
    return times[1:]


def as_process(spec: Path, runs: int) -> list[float]:
    command = [*rnnc_command(), "check", "-q", str(spec)]
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed with status {done.returncode}:\n{done.stderr}")
    return times[1:]


def big_npz(folder: Path, gigabytes: float, compressed: bool) -> tuple[Path, dict]:
    samples = int(gigabytes * 1e9 / (4 * STEPS * FEATURES))
    path = folder / "big.npz"
    save = np.savez_compressed if compressed else np.savez
    start = time.perf_counter()
    save(path, x=np.zeros((samples, STEPS, FEATURES), np.float32), y=np.zeros(samples, np.float32))
    written = time.perf_counter() - start
    (folder / "big.yaml").write_text(SPEC)
    return folder / "big.yaml", {"samples": samples, "array_bytes": samples * STEPS * FEATURES * 4,
                                 "file_bytes": path.stat().st_size, "write_seconds": written}


def measure(runs: int, gigabytes: float) -> dict:
    import rnnc

    started = time.perf_counter()
    result: dict = {
        "machine": {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "rnnc": rnnc.__version__, "platform": platform.platform()},
        "load_before": os.getloadavg()[0], "targets": TARGETS, "python_startup": summary(as_python(runs)),
        "shipped": {},
    }
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        result["shipped"][spec.stem] = {"process": summary(as_process(spec, runs)), "in_process": summary(in_process(spec, runs))}
    for variant in ("stored", "compressed"):
        folder = Path(tempfile.mkdtemp(prefix="rnnc-check-speed-"))
        try:
            spec, sizes = big_npz(folder, gigabytes, variant == "compressed")
            result[f"npz_{variant}"] = {**sizes, "process": summary(as_process(spec, runs)),
                                        "in_process": summary(in_process(spec, runs))}
        finally:
            shutil.rmtree(folder)
    result["load_after"] = os.getloadavg()[0]
    result["seconds"] = time.perf_counter() - started
    return result


def as_python(runs: int) -> list[float]:
    """A bare `python -c pass`: the part of a process's time that is not rnnc's."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return times


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size of the arrays in the .npz (default 1)")
    parser.add_argument("--json", type=Path, default=RESULT, help=f"where to write every number (default {RESULT.relative_to(ROOT)})")
    parser.add_argument("--render", type=Path, help="only print the table of an earlier run's JSON file")
    args = parser.parse_args()
    if args.render:
        print(report(json.loads(args.render.read_text())))
        return 0
    result = measure(args.runs, args.gigabytes)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
