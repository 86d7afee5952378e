"""The hand-written loop against itself: how often the initialisation study's criteria
pass a method that is exactly as good as the loop.

The issue's goal reads "on every task, rnnc's median over seeds is at least as good as
hand-written PyTorch's". This script asks what that criterion gives when both arms are
the same method. It pools the hand loop's per-seed results of the committed studies
(each task's seeds from every file that ran them; a seed run twice must agree to the
last digit, and does: the loop is deterministic for a seed). Each task's pool is split
at random into two disjoint arms of `--arm` seeds, and the share of splits where the
first arm's median is at least the second's is counted, and how often the means'
interval calls it worse or better (`init_stats.twin_chances`). From those shares:
the expected number of tasks that pass, the chance that all pass, and the chance that
none is worse. It also records the one direct comparison the files allow: seeds
100-119 against 0-19.

No training runs here. The figures come from the JSON alone (about 30 s):

    python bench/init_noise.py                       # -> bench/results/init_noise.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import init_stats  # noqa: E402

HAND = "hand-written PyTorch"
STUDIES = ("init_study_20.json", "init_study_fresh.json", "init_study_simple_rnn.json")
OUT = HERE / "results" / "init_noise.json"


def pooled(paths: list[Path]) -> tuple[dict[str, dict], dict]:
    """Per task: its description and the hand loop's value for each seed, over every
    file; and the machine the studies ran on (they must agree)."""
    tasks: dict[str, dict] = {}
    machine = None
    for path in paths:
        study = json.loads(path.read_text())
        if machine is not None and study["machine"] != machine:
            raise SystemExit(f"{path.name}: ran on {study['machine']}, the others on {machine}")
        machine = study["machine"]
        for name, task in study["tasks"].items():
            if HAND not in task["results"]:
                continue
            entry = tasks.setdefault(name, {"metric": task["metric"], "held_out": task["held_out"],
                                            "higher_is_better": task["higher_is_better"], "values": {}, "files": []})
            entry["files"].append(path.name)
            for seed, value in zip(study["seeds"], task["results"][HAND]["seeds"], strict=True):
                known = entry["values"].setdefault(seed, value)
                if known != value:
                    raise SystemExit(f"{path.name}: {name} seed {seed} gave {value}, another file {known}")
    return tasks, machine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", nargs="+", type=Path, default=[HERE / "results" / name for name in STUDIES])
    parser.add_argument("--arm", type=int, default=20, help="seeds per arm, as the study runs them (default 20)")
    parser.add_argument("--splits", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    missing = [str(path) for path in args.studies if not path.is_file()]
    if missing:
        print(f"init_noise: no such results file: {', '.join(missing)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    tasks, machine = pooled(args.studies)
    found = {}
    for name, task in tasks.items():
        values = task.pop("values")
        seeds = sorted(values)
        pool = [values[seed] for seed in seeds]
        entry = {**task, "seeds": len(seeds), "seed_ranges": _ranges(seeds)}
        if len(pool) >= 2 * args.arm:
            entry["twin"] = init_stats.twin_chances(pool, args.arm, task["higher_is_better"], splits=args.splits)
        if all(s in values for s in [*range(args.arm), *range(100, 100 + args.arm)]):
            early, late = ([values[s] for s in range(first, first + args.arm)] for first in (0, 100))
            direct = init_stats.versus(late, early, task["higher_is_better"])
            entry["direct"] = {"verdict": direct["verdict"], "median_at_least": direct["median_at_least_hand"],
                               "p": direct["p"], "late_median": direct["ours"]["median"],
                               "early_median": direct["hand"]["median"]}
        found[name] = entry
    chances = [task["twin"] for task in found.values() if "twin" in task]
    result = {
        "machine": machine, "sources": [path.name for path in args.studies], "arm": args.arm, "splits": args.splits,
        "resamples": init_stats.RESAMPLES, "tasks": found,
        "expected_passes": sum(c["median_at_least"] for c in chances),
        "all_pass": math.prod(c["median_at_least"] for c in chances),
        "expected_worse": sum(c["worse"] for c in chances),
        "none_worse": math.prod(1 - c["worse"] for c in chances),
        "seconds": round(time.perf_counter() - start, 1),
    }
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"{len(chances)} tasks: an identical method passes the median criterion on {result['expected_passes']:.1f} "
          f"of them on average, all of them with chance {result['all_pass']:.2g}; no task worse by the means' "
          f"interval with chance {result['none_worse']:.2f}. Wrote {args.out}")
    return 0


def _ranges(seeds: list[int]) -> str:
    """`[0, 1, 2, 100, 101]` -> `0-2, 100-101`."""
    starts = [seed for i, seed in enumerate(seeds) if i == 0 or seeds[i - 1] != seed - 1]
    ends = [seed for i, seed in enumerate(seeds) if i == len(seeds) - 1 or seeds[i + 1] != seed + 1]
    return ", ".join(f"{start}-{end}" for start, end in zip(starts, ends, strict=True))


if __name__ == "__main__":
    raise SystemExit(main())
