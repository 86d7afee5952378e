"""Cold start of `rnnc check`: the wall time of the whole process, new each run.

`rnnc check` is what an editor hook or a CI lint step runs on every save, so its cost
is the interpreter start plus rnnc's imports plus one validation. The target is under
0.3 s on a 2-core machine. Each run is a fresh process (no warm import cache in the
interpreter; the OS file cache is warm after the first run, as it is in real use).
Reports the median and the min-max, next to a bare `python -c pass` for scale.

    python bench/check_startup.py [--runs 10] [--spec specs/seed_binary.yaml] [--target 0.3]

For where the time goes: python -X importtime -m rnnc check specs/seed_binary.yaml
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rnnc_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m rnnc`."""
    script = Path(sys.executable).with_name("rnnc")
    if script.exists():
        return [str(script)]
    found = shutil.which("rnnc")
    return [found] if found else [sys.executable, "-m", "rnnc"]


def wall_times(command: list[str], runs: int) -> tuple[list[float], int]:
    times, status = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        status = done.returncode
        if status not in (0, 2):
            sys.exit(f"{' '.join(command)} failed with status {status}:\n{done.stderr}")
    return times, status


def describe(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f} s  (min {min(times):.3f}, max {max(times):.3f}, {len(times)} runs)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--spec", default=str(ROOT / "specs" / "seed_binary.yaml"))
    parser.add_argument("--target", type=float, default=0.3, help="seconds; exit 1 if the median is above")
    args = parser.parse_args()

    command = [*rnnc_command(), "check", args.spec]
    wall_times(command, 1)  # fill the OS file cache, as any earlier use would have
    bare, _ = wall_times([sys.executable, "-c", "pass"], args.runs)
    check, status = wall_times(command, args.runs)
    print(f"python -c pass : {describe(bare)}")
    print(f"rnnc check     : {describe(check)}  exit status {status}")
    median = statistics.median(check)
    verdict = "within" if median <= args.target else "OVER"
    print(f"target {args.target:.3f} s: {verdict}")
    if status != 0:
        print(f"note: the spec did not validate (exit {status}); missing data files?", file=sys.stderr)
    return 0 if median <= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
