"""Forecast Mauna Loa CO2 13 weeks ahead with a graph: a sequence plus static features.

One command: `python examples/co2_static/run.py` trains `spec.yaml` with `rnnc train`
(an LSTM over the last 52 weekly changes; the calendar, static features of each
sample, joins its final state before the head), and, for the comparison, the v1 chain
of examples/co2_forecast (the same LSTM with the time of year as two more columns at
every step). Both exported models run with onnxruntime (`rnnc.runtime.load`) on every
window of the test period (1996-2001); each predicted change becomes a level (the
window's last level plus the change), and the mean absolute error in ppm is printed
beside two forecasts that need no model:

- seasonal naive: the level 52 weeks before the target week;
- persistence: the window's last level (no change in 13 weeks).

Both examples cut the same windows from examples/co2_forecast/data/test.csv, so they
score the same weeks: those with a real measurement (the 59 weeks the record misses
were filled in for the inputs, never scored). Extra arguments go to the graph's `rnnc
train` (e.g. `--set training.seed=1`), `--v1-set KEY=VALUE` to the v1 run's; with
`--reuse-v1` the v1 model already in `--v1-run-dir` is used as it is.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

import rnnc.cli

# `rnnc train` below runs in this process, on one torch thread unless OMP_NUM_THREADS
# says otherwise: these small recurrent steps gain nothing from more, and lose a lot on
# a busy machine. torch reads the variable once, when it is first imported (by `rnnc
# train`, not by anything above), so the default is set here, before that.
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
V1 = HERE.parent / "co2_forecast"
SEASON, WINDOW, HORIZON = 52, 52, 13  # weeks, as both specs


def train(spec: Path, run_dir: Path, extra: list[str]) -> int:
    return rnnc.cli.main(["train", str(spec), "-o", str(run_dir), "--no-progress", *extra])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/co2-static"), help="where rnnc train writes (default: runs/co2-static)")
    parser.add_argument("--v1-run-dir", type=Path, default=Path("runs/co2-forecast"),
                        help="where the v1 co2_forecast run goes (default: runs/co2-forecast)")
    parser.add_argument("--v1-set", action="append", default=[], metavar="KEY=VALUE", help="a setting for the v1 run only")
    parser.add_argument("--reuse-v1", action="store_true", help="use the v1 run already in --v1-run-dir instead of training it")
    args, extra = parser.parse_known_args()
    if status := train(HERE / "spec.yaml", args.run_dir, extra):
        return status
    if not args.reuse_v1 and (status := train(V1 / "spec.yaml", args.v1_run_dir, [f"--set={s}" for s in args.v1_set])):
        return status

    from rnnc.data import load_file
    from rnnc.runtime import load
    from rnnc.spec import load_model

    test = np.load(HERE / "data" / "test.npz")
    graph = load(args.run_dir / "model.onnx").predict({"history": test["history"], "calendar": test["calendar"]})["change"][:, 0]
    v1_model = load_model(V1 / "spec.yaml")
    assert v1_model.data.test is not None
    chain = load(args.v1_run_dir / "model.onnx").predict(load_file(v1_model, v1_model.data.test).x)[:, 0]
    assert len(chain) == len(graph)  # the same windows of the same file

    with (V1 / "data" / "test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    level = np.array([float(r["co2"]) for r in rows])
    measured = np.array([r["measured"] == "1" for r in rows])
    target = np.arange(len(graph)) + WINDOW - 1 + HORIZON  # the row each window forecasts
    last = target - HORIZON  # the window's last row
    scored = measured[target]
    truth = level[target][scored]
    forecasts = {
        "LSTM + calendar features (this graph, model.onnx on onnxruntime)": (level[last] + graph)[scored],
        "LSTM with the season at every step (v1 co2_forecast)": (level[last] + chain)[scored],
        f"seasonal naive (the level {SEASON} weeks earlier)": level[target - SEASON][scored],
        f"persistence (the last level, {HORIZON} weeks earlier)": level[last][scored],
    }
    print(f"\ntest: {int(scored.sum())} measured weeks from {rows[target[0]]['date']} to {rows[target[-1]]['date']}, "
          f"forecast {HORIZON} weeks ahead")
    errors = {}
    for name, forecast in forecasts.items():
        errors[name] = float(np.abs(forecast - truth).mean())
        print(f"  MAE {errors[name]:.3f} ppm  {name}")
    ours, v1, naive, _ = errors.values()
    print(f"\ngraph MAE {ours:.3f} ppm vs v1 chain {v1:.3f} ppm vs seasonal naive {naive:.3f} ppm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
