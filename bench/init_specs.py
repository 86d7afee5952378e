"""The shipped specs, as shipped, under two or more initialisation schemes.

    nice -n 19 .venv/bin/python bench/init_specs.py [--schemes keras,adaptive] [--seeds 0-9] [--jobs 2]

bench/init_examples.py runs the examples' own commands; this trains each spec in specs/
with `rnnc train SPEC --set training.initializer=SCHEME --set training.seed=S --threads 1`,
`--jobs` at a time, and records the kept model's validation metric (the restored best
epoch's under early stopping, else the last epoch's; bf16_training.py's `kept`). A spec
whose layers start alike under the schemes compared gives the same value under each,
seed for seed: a check on the runs. Writes bench/results/init_specs.json (`--out`): per
spec and scheme, the value per seed, with the CPU, its vector extensions, the load
average and torch's version. Not a timing benchmark (run it under nice, no lock).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bf16_training import SPECS, _monitor, kept  # noqa: E402
from init_study import machine  # noqa: E402

from rnnc.artifacts import atomic_write_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "init_specs.json"
SHIPPED = [spec for spec in SPECS if spec.startswith("specs/")]


def train(spec: str, scheme: str, seed: int) -> float:
    metric, higher = SPECS[spec]
    path = ROOT / spec
    rnnc = Path(sys.executable).parent / "rnnc"
    with tempfile.TemporaryDirectory() as run:
        subprocess.run([str(rnnc), "train", str(path), "-o", run, "--no-progress", "--threads", "1",
                        "--set", f"training.initializer={scheme}", "--set", f"training.seed={seed}"],
                       check=True, capture_output=True, text=True, cwd=path.parent)
        lines = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return kept(lines, metric, higher, _monitor(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", default="keras,adaptive", help="the schemes compared (default keras,adaptive)")
    parser.add_argument("--seeds", default="0-9", help="seeds FIRST-LAST (default 0-9)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each (default 2)")
    parser.add_argument("--specs", default=",".join(SHIPPED))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    schemes, specs = args.schemes.split(","), args.specs.split(",")
    started, before = time.perf_counter(), os.getloadavg()
    jobs = [(spec, scheme, seed) for spec in specs for scheme in schemes for seed in seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        values = dict(zip(jobs, pool.map(lambda job: train(*job), jobs), strict=True))
    found = {}
    for spec in specs:
        metric, higher = SPECS[spec]
        found[spec] = {"metric": metric, "higher_is_better": higher,
                       "schemes": {scheme: [values[spec, scheme, seed] for seed in seeds] for scheme in schemes}}
        medians = {scheme: statistics.median(v) for scheme, v in found[spec]["schemes"].items()}
        print(spec, metric, medians, flush=True)
    result = {"benchmark": "init_specs", "machine": machine(), "seeds": seeds, "schemes": schemes, "specs": found,
              "load_average": {"before": before, "after": os.getloadavg()}, "minutes": (time.perf_counter() - started) / 60,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "jobs": args.jobs}
    atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
