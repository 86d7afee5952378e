"""`training.precision: bf16` on a CPU against fp32: training throughput on the benchmark
workloads, and the trained models' validation metrics on the shipped specs and examples.

Speed (`--part speed`): rnnc at fp32, rnnc at bf16 and the hand-written PyTorch loop (fp32)
train the same workload (bench/workloads.py) in one process, their epochs interleaved and
the order rotated each repetition (bench/train_throughput.py's runners); reported: samples/s,
median with min-max, the median of each repetition's bf16/fp32 and rnnc/PyTorch ratios,
and each one's share of the limit (bench/limit.py, sampled before and after). Run it under
`flock /tmp/rnnc-bench.lock` on a quiet machine.

Quality (`--part quality`): `rnnc train` on each spec at fp32 and at bf16 (`--set
training.precision=...`), several seeds; the kept model's validation metric (the best
epoch's where early stopping restores it, else the last epoch's), median over seeds.
Untimed: run it under `nice`.

    python bench/bf16_training.py --part speed --reps 5 [--workloads a,b,c,d] [--threads 1]
    python bench/bf16_training.py --part quality --seeds 0,1,2
    (each merges its part into results/bf16_training.json)
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "results" / "bf16_training.json"
# spec -> (validation metric, higher is better)
SPECS = {
    "specs/seed_binary.yaml": ("val_accuracy", True),
    "specs/lstm_classifier.yaml": ("val_accuracy", True),
    "specs/text_lstm.yaml": ("val_accuracy", True),
    "specs/gru_stacked_bidir.yaml": ("val_accuracy", True),
    "specs/gru_forecaster.yaml": ("val_mae", False),
    "examples/sunspots/spec.yaml": ("val_accuracy", True),
    "examples/lang_id/spec.yaml": ("val_accuracy", True),
}


def speed(keys: list[str], reps: int, warmup: int) -> dict:
    sys.path.insert(0, str(HERE))
    import limit
    import torch
    from train_throughput import pytorch_epoch_runner, rnnc_epoch_runner, summary
    from workloads import WORKLOADS, forward_flops

    device = torch.device("cpu")
    threads = torch.get_num_threads()
    first = limit.sample(threads)  # the limit, sampled before and after the training
    found = {}
    for key in keys:
        work = WORKLOADS[key]
        xs, ys = work.data()
        runners = {"rnnc fp32": rnnc_epoch_runner(work, xs, ys, device, precision="fp32"),
                   "rnnc bf16": rnnc_epoch_runner(work, xs, ys, device, precision="bf16"),
                   "pytorch fp32": pytorch_epoch_runner(work, xs, ys, device)}
        rates: dict[str, list[float]] = {name: [] for name in runners}
        order = list(runners.items())
        for rep in range(warmup + reps):
            turn = order[rep % 3:] + order[: rep % 3]  # who goes first rotates
            for name, run in turn:
                start = time.perf_counter()
                run(rep + 1)
                if rep >= warmup:
                    rates[name].append(work.samples / (time.perf_counter() - start))
        found[key] = {"title": work.title, "batch": work.batch, "samples": work.samples,
                      "train_flops": 3 * forward_flops(work), **{name: summary(v) for name, v in rates.items()},
                      "bf16_over_fp32": summary([b / f for b, f in zip(rates["rnnc bf16"], rates["rnnc fp32"], strict=True)]),
                      "fp32_over_pytorch": summary([f / p for f, p in zip(rates["rnnc fp32"], rates["pytorch fp32"], strict=True)])}
        print(key, json.dumps(found[key]), flush=True)
    best = limit.summarise([first, limit.sample(threads)], threads)
    for entry in found.values():
        entry["percent_of_limit"] = {name: 100 * entry[name]["median"] * entry["train_flops"] / 1e9 / best["median"]
                                     for name in ("rnnc fp32", "rnnc bf16", "pytorch fp32")}
    return {"threads": threads, "reps": reps, "limit": best, "workloads": found}


def kept(lines: list[dict], metric: str, higher: bool, monitor: tuple[str, bool] | None) -> float:
    """The metric of the epoch whose weights were kept."""
    if monitor is None:
        return float(lines[-1][metric])
    name, up = monitor
    best = (max if up else min)(lines, key=lambda line: line[name])
    return float(best[metric])


def _monitor(spec: Path) -> tuple[str, bool] | None:
    import yaml

    stop = (yaml.safe_load(spec.read_text()).get("training") or {}).get("early_stopping")
    if not stop or stop.get("restore_best") is False:
        return None
    name = stop.get("monitor", "val_loss")
    return name, not name.endswith(("loss", "mae", "mse", "rmse"))


def quality(seeds: list[int], specs: list[str]) -> dict:
    found = {}
    rnnc = Path(sys.executable).parent / "rnnc"
    for spec in specs:
        metric, higher = SPECS[spec]
        path = ROOT / spec
        monitor = _monitor(path)
        entry: dict = {"metric": metric, "higher_is_better": higher, "seeds": seeds}
        for precision in ("fp32", "bf16"):
            values, seconds = [], []
            for seed in seeds:
                with tempfile.TemporaryDirectory() as run:
                    start = time.perf_counter()
                    subprocess.run([str(rnnc), "train", str(path), "-o", run, "--no-progress", "--set",
                                    f"training.precision={precision}", "--set", f"training.seed={seed}"],
                                   check=True, capture_output=True, text=True, cwd=path.parent)
                    seconds.append(time.perf_counter() - start)
                    lines = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
                    values.append(kept(lines, metric, higher, monitor))
            entry[precision] = {"values": values, "median": statistics.median(values), "seconds": statistics.median(seconds)}
        scale = 100 if metric.endswith("accuracy") else 1
        entry["difference"] = (entry["bf16"]["median"] - entry["fp32"]["median"]) * scale  # points for accuracy
        found[spec] = entry
        print(spec, json.dumps(entry), flush=True)
    return {"specs": found}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("speed", "quality"), required=True)
    parser.add_argument("--workloads", default="a,b,c,d")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch's intra-op threads for --part speed (default: torch's, the cores)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--specs", default=",".join(SPECS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import limit
    from gemm_choice import cpu_model

    before = os.getloadavg()
    key = args.part
    if args.part == "speed":
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
            key = f"speed {args.threads} thread{'s' if args.threads > 1 else ''}"
        part = speed(args.workloads.split(","), args.reps, args.warmup)
    else:
        part = quality([int(s) for s in args.seeds.split(",")], args.specs.split(","))
    part.update(load_average={"before": before, "after": os.getloadavg()}, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    result = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "bf16_training"}
    result.update(cpu=cpu_model(), isa=limit.vector_isa(), **{key: part})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
