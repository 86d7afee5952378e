"""Training speed of rnnc against hand-written PyTorch on the four workloads, on one
thread and on two, optionally with an earlier rnnc beside them in the same process.

Each workload trains with rnnc's `Trainer.train_epoch` and with bench/train_throughput.py's
hand-written loop (torch's modules, `torch.optim.Adam`); with `--before REV` also with
the torch backend as it was at git revision REV (extracted to a temporary directory and
imported under another name, the rest of rnnc shared), so a gain is measured side by
side rather than across runs on a machine whose load changes. Epochs interleave, the
order rotating each repetition; reported: samples/s, median (min-max), and the median
of each repetition's ratios. Run it under `flock /tmp/rnnc-bench.lock`; the load
average is recorded before and after each workload.

    python bench/train_speed.py --threads 1 --reps 7 --before 3627fdc   # -> results/train_speed.json
    python bench/train_speed.py --threads 2 --reps 7 --before 3627fdc   # merged into the same file
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "train_speed.json"
BEFORE = "rnnc_torch_before"


def _before_package(rev: str, folder: Path) -> str:
    """The torch backend at `rev`, importable as `BEFORE`; its short commit id."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "backends/rnnc_torch"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "backends" / "rnnc_torch").rename(folder / BEFORE)
    sys.path.insert(0, str(folder))
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True, capture_output=True, text=True).stdout.strip()


def _rnnc_runner(package: str, work, xs, ys) -> Callable[[int], float]:  # type: ignore[no-untyped-def]
    import torch

    from rnnc.data import from_arrays

    trainer = importlib.import_module(f"{package}.trainer")
    model = work.model()
    run = trainer.Trainer(model, "cpu")
    data = trainer.DeviceData.of(model, from_arrays(model, xs, ys), torch.device("cpu"))
    return lambda seed: run.train_epoch(seed, data, model.optimizer.lr)["loss"]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(key: str, reps: int, warmup: int, before: bool) -> dict:
    import torch

    from train_throughput import pytorch_epoch_runner
    from workloads import WORKLOADS, forward_flops

    work = WORKLOADS[key]
    xs, ys = work.data()
    runners = {"rnnc": _rnnc_runner("rnnc_torch", work, xs, ys)}
    if before:
        runners["rnnc before"] = _rnnc_runner(BEFORE, work, xs, ys)
    runners["pytorch"] = pytorch_epoch_runner(work, xs, ys, torch.device("cpu"))
    rates: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners.items())
    load = os.getloadavg()[0]
    for rep in range(warmup + reps):
        for name, run in order[rep % len(order):] + order[: rep % len(order)]:  # who goes first rotates
            start = time.perf_counter()
            run(rep + 1)
            if rep >= warmup:
                rates[name].append(work.samples / (time.perf_counter() - start))
    found = {"title": work.title, "batch": work.batch, "samples": work.samples, "train_flops": 3 * forward_flops(work),
             "load_average": {"before": load, "after": os.getloadavg()[0]}, **{name: summary(v) for name, v in rates.items()},
             "rnnc_over_pytorch": summary([a / b for a, b in zip(rates["rnnc"], rates["pytorch"], strict=True)])}
    if before:
        found["rnnc_over_before"] = summary([a / b for a, b in zip(rates["rnnc"], rates["rnnc before"], strict=True)])
        found["before_over_pytorch"] = summary([a / b for a, b in zip(rates["rnnc before"], rates["pytorch"], strict=True)])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="a,b,c,d")
    parser.add_argument("--threads", default="1,2", help="torch intra-op thread counts, one run each (default 1,2)")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--before", help="a git revision whose torch backend also trains, side by side")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import torch

    import limit
    from gemm_choice import cpu_model

    result: dict = {"benchmark": "train_speed", "cpu": cpu_model(), "isa": limit.vector_isa(), "torch": torch.__version__,
                    "reps": args.reps, "command": "python bench/train_speed.py " + " ".join(sys.argv[1:]), "runs": {}}
    with tempfile.TemporaryDirectory() as folder:
        if args.before:
            result["before"] = _before_package(args.before, Path(folder))
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            run: dict = {"threads": threads, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "workloads": {}}
            for key in args.workloads.split(","):
                run["workloads"][key] = measure(key, args.reps, args.warmup, bool(args.before))
                print(threads, key, json.dumps(run["workloads"][key]), flush=True)
            result["runs"][f"{threads} thread{'s' if threads > 1 else ''}"] = run
    if args.out.exists():  # a run per thread count merges into the file (each stays under a few minutes)
        earlier = json.loads(args.out.read_text())
        if earlier.get("before") == result.get("before"):
            result["runs"] = {**earlier.get("runs", {}), **result["runs"]}
            result["command"] = "; ".join(dict.fromkeys([*earlier["command"].split("; "), result["command"]]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
