"""The shipped examples, as shipped, under two initialisation schemes: what changing the default does.

    nice -n 19 .venv/bin/python bench/init_examples.py [--schemes hybrid,adaptive] [--seeds 0-4] [--jobs 2]

bench/init_study.py compares schemes on fixed-epoch versions of its tasks; this runs the
examples' own commands (`python examples/NAME/run.py`, early stopping and schedules as
shipped) with `--set training.seed=S --set training.initializer=SCHEME`, one torch thread
each, `--jobs` at a time, and reads each example's headline figures from its output.
Only the examples whose layers start differently under the schemes compared are run
(rnnc.initial.scheme_of: an embedding before a simple_rnn or gru, a regression head;
`--examples` names others, such as sunspots for hybrid against torch);
the graph examples co2_static and lang_attention reuse the v1 example's run of the same
scheme and seed as their baseline. Each run's output goes to `--work`/NAME-SCHEME-SEED.log
with its exit status and wall time on the last line; a log that ends in `rc=0` is read
again instead of training again, so a stopped run resumes. Writes
bench/results/init_examples.json (`--out`): per example, figure and scheme, the value
per seed, median and min-max, with the CPU, its vector extensions, the load average and
torch's version. Not a timing benchmark (run it under nice, no lock).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from init_study import machine  # noqa: E402

from rnnc.artifacts import atomic_write_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "init_examples.json"


@dataclass(frozen=True)
class Example:
    """An example's command and the figures its output prints: name -> (pattern, lower is better)."""

    name: str
    figures: dict[str, tuple[str, bool]]
    baseline: str | None = None  # the v1 example whose run this graph example reuses
    seeds: int = 5  # how many of the seeds asked for (the slower examples run fewer)


EXAMPLES = (
    Example("lang_id", {"test accuracy": (r"GRU \(rnnc, model\.onnx on onnxruntime\): test accuracy ([\d.]+)", False),
                        "test loss": (r"^test  loss ([\d.]+)", True)}),
    Example("co2_forecast", {"test MAE (ppm)": (r"LSTM MAE ([\d.]+) ppm vs", True)}),
    Example("co2_horizon", {"direct, mean MAE over 13 steps (ppm)": (r"^  mean +([\d.]+)", True),
                            "recursive, mean MAE over 13 steps (ppm)": (r"^  mean +[\d.]+ +([\d.]+)", True)}, seeds=3),
    Example("char_generator", {"test accuracy": (r"^test  loss [\d.]+  accuracy ([\d.]+)", False)}, seeds=1),
    Example("co2_static", {"test MAE (ppm)": (r"graph MAE ([\d.]+) ppm vs", True)}, baseline="co2_forecast"),
    Example("lang_attention", {"test accuracy": (r"^attention \(this graph, model\.onnx on onnxruntime\): test accuracy ([\d.]+)", False)},
            baseline="lang_id", seeds=1),
)
# run only when named (--examples): it starts the same under hybrid and adaptive, and
# compared another way (hybrid against torch) it takes 20 seeds to tell a point apart
OPTIONAL = (Example("sunspots", {"test accuracy": (r"SimpleRNN ([\d.]+) vs persistence", False)}, seeds=20),)


def command(example: Example, scheme: str, seed: int, work: Path) -> list[str]:
    run = [sys.executable, str(ROOT / "examples" / example.name / "run.py"), "--run-dir", str(work / "runs" / f"{example.name}-{scheme}-{seed}")]
    if example.baseline:
        run += ["--v1-run-dir", str(work / "runs" / f"{example.baseline}-{scheme}-{seed}"), "--reuse-v1"]
    if example.name == "co2_horizon":  # its picture stays in the work folder, not in the example's
        run += ["--plot", str(work / f"{example.name}-{scheme}-{seed}.png")]
    return run + ["--set", f"training.seed={seed}", "--set", f"training.initializer={scheme}"]


def run_once(example: Example, scheme: str, seed: int, work: Path) -> str:
    """The run's output, from its log when an earlier run finished, else by running it."""
    log = work / f"{example.name}-{scheme}-{seed}.log"
    if log.exists() and re.search(r"^rc=0 ", log.read_text(), re.M):
        return log.read_text()
    start = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(command(example, scheme, seed, work), cwd=ROOT, env=env, capture_output=True, text=True)
    text = done.stdout + done.stderr + f"rc={done.returncode} wall={time.monotonic() - start:.0f}s\n"
    log.write_text(text)
    if done.returncode:
        raise SystemExit(f"{example.name} ({scheme}, seed {seed}) failed with status {done.returncode}: see {log}")
    return text


def figures(example: Example, text: str) -> dict[str, float]:
    found = {}
    for name, (pattern, _) in example.figures.items():
        match = re.search(pattern, text, re.M)
        if match is None:
            raise SystemExit(f"{example.name}: its output has no {name!r} (pattern {pattern})")
        found[name] = float(match.group(1))
    return found


def parse_seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schemes", default="hybrid,adaptive", help="the two or more schemes compared (default hybrid,adaptive)")
    parser.add_argument("--seeds", default="0-4", help="seeds FIRST-LAST (default 0-4; the slower examples take the first 1 or 3)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each (default 2)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "init_examples", help="logs and runs (default runs/init_examples)")
    parser.add_argument("--examples", default=",".join(e.name for e in EXAMPLES),
                        help=f"comma-separated examples (default: {', '.join(e.name for e in EXAMPLES)}; also "
                             f"{', '.join(e.name for e in OPTIONAL)})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    schemes, seeds = args.schemes.split(","), parse_seeds(args.seeds)
    known, names = {e.name: e for e in (*EXAMPLES, *OPTIONAL)}, args.examples.split(",")
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"--examples: no example {', '.join(unknown)} (known: {', '.join(known)})")
    examples = [known[n] for n in names]
    missing = [e.baseline for e in examples if e.baseline and e.baseline not in names]
    if missing:
        parser.error(f"--examples: the graph examples reuse {', '.join(missing)}'s runs: name it too")
    (args.work / "runs").mkdir(parents=True, exist_ok=True)
    loads, start = [list(os.getloadavg())], time.monotonic()
    found: dict[tuple[str, str, int], dict[str, float]] = {}  # (example, scheme, seed) -> its figures
    walls: list[int] = []
    for baseline in (False, True):  # the graph examples after the runs they reuse
        todo = [(e, s, seed) for e in examples if bool(e.baseline) == baseline for s in schemes for seed in seeds[:e.seeds]]
        with ThreadPoolExecutor(args.jobs) as pool:
            for (e, s, seed), text in zip(todo, pool.map(lambda job: run_once(*job, args.work), todo), strict=True):
                found[e.name, s, seed] = figures(e, text)
                walls.append(int(re.search(r"^rc=0 wall=(\d+)s", text, re.M).group(1)))
                print(f"{e.name} {s} seed {seed}: {found[e.name, s, seed]}", flush=True)
        loads.append(list(os.getloadavg()))
    result = {"machine": machine(), "load": loads, "seconds": round(time.monotonic() - start), "run_seconds": sum(walls), "seeds": seeds,
              "schemes": schemes, "examples": {}}
    for e in examples:
        entry = result["examples"][e.name] = {"baseline": e.baseline, "figures": {}}
        for name, (_, lower) in e.figures.items():
            by_scheme = {}
            for s in schemes:
                values = [found[e.name, s, seed][name] for seed in seeds[:e.seeds]]
                by_scheme[s] = {"seeds": seeds[:e.seeds], "values": values, "median": statistics.median(values),
                                "min": min(values), "max": max(values)}
            entry["figures"][name] = {"lower_is_better": lower, "schemes": by_scheme}
    atomic_write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
