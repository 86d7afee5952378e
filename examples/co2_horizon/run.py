"""Forecast Mauna Loa CO2 for every week 1..13 ahead, direct and recursive, against seasonal naive.

One command: `python examples/co2_horizon/run.py` trains two models with `rnnc train`
on the co2_forecast example's weekly record (an LSTM over 52-week windows of the
weekly change and the time of year):

- direct (`spec.yaml`, `data.csv.all_steps`): one model, 13 outputs, the weekly
  change 1, 2, ... 13 weeks after the window's last week;
- recursive (`spec_one_step.yaml`): the change one week ahead, rolled forward over its
  own forecasts (`rnnc.cli.predict_rollout.roll_forward`, what `rnnc predict --steps`
  runs), the time of year of the weeks ahead known.

For every forecast origin of the test period (1996-2001) whose 13 weeks ahead all lie
in it, each forecast of the level k weeks ahead (the last level plus the first k
forecast changes) is scored against the truth, and against the seasonal-naive
forecast (the level 52 weeks before the target week), for every k: a table of MAE per
step and `forecast.png` (MAE against k; one forecast against the truth). Only weeks
with a real measurement count. One origin also goes through the command line,
`rnnc predict RUN --steps 13` on a file `prepare.py` writes, and must give the same
forecast. Extra arguments go to both `rnnc train` runs.
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
# says otherwise (small recurrent steps gain nothing from more); torch reads it once,
# when it is first imported, so it is set before that.
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
SEASON, WINDOW, HORIZON = 52, 52, 13
FIRST_TARGET = "1996-01-01"  # the test period's first week
EXAMPLE_ORIGIN = "2001-09-29"  # the forecast drawn in forecast.png: the test file's last full 13 weeks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/co2-horizon"), help="where the runs go (default: runs/co2-horizon)")
    parser.add_argument("--plot", type=Path, default=HERE / "forecast.png", help="the picture (default: forecast.png here)")
    args, extra = parser.parse_known_args()
    runs = {"direct": args.run_dir / "direct", "recursive": args.run_dir / "one_step"}
    for (name, run), spec in zip(runs.items(), ("spec.yaml", "spec_one_step.yaml"), strict=True):
        print(f"--- rnnc train {spec} ({name})", flush=True)
        if status := rnnc.cli.main(["train", str(HERE / spec), "-o", str(run), "--no-progress", *extra]):
            return status

    from prepare import read_rows, write_future

    from rnnc.cli.predict_rollout import roll_forward
    from rnnc.runtime import Predictor

    rows = read_rows("test")
    dates = np.array([r["date"] for r in rows])
    level = np.array([float(r["co2"]) for r in rows])
    measured = np.array([r["measured"] == "1" for r in rows])
    series = np.array([[float(r[c]) for c in ("dco2", "season_sin", "season_cos")] for r in rows], np.float32)
    # origin t: the window's last week; its targets are weeks t + 1 .. t + 13, all in the test period
    origins = np.array([t for t in range(WINDOW - 1, len(rows) - HORIZON) if dates[t + 1] >= FIRST_TARGET])
    x = np.stack([series[t - WINDOW + 1 : t + 1] for t in origins])
    ahead = np.stack([series[t + 1 : t + 1 + HORIZON] for t in origins])
    changes = {
        "direct": Predictor(runs["direct"] / "model.onnx").predict(x),
        "recursive": roll_forward(Predictor(runs["recursive"] / "model.onnx"), x, ahead, (0,))[:, :, 0],
    }
    target = origins[:, None] + np.arange(1, HORIZON + 1)  # [origins, step]
    forecasts = {name: level[origins, None] + np.cumsum(c, axis=1) for name, c in changes.items()}
    forecasts["seasonal naive"] = level[target - SEASON]
    scored = measured[target]
    mae = {name: np.array([np.abs(f[:, k] - level[target[:, k]])[scored[:, k]].mean() for k in range(HORIZON)])
           for name, f in forecasts.items()}

    print(f"\ntest: {len(origins)} forecast origins, {dates[origins[0]]} .. {dates[origins[-1]]}; "
          f"MAE (ppm) of the level k weeks ahead, measured weeks only")
    names = list(mae)
    print("  step" + "".join(f"  {n:>14}" for n in names))
    for k in range(HORIZON):
        print(f"  {'+' + str(k + 1):>4}" + "".join(f"  {mae[n][k]:>14.3f}" for n in names))
    print("  mean" + "".join(f"  {mae[n].mean():>14.3f}" for n in names))

    # the command line gives the same recursive forecast for one origin
    origin = int(np.flatnonzero(dates == EXAMPLE_ORIGIN)[0])
    future, out = args.run_dir / "future.csv", args.run_dir / "future_forecast.csv"
    write_future(rows, origin, HORIZON, future)
    if status := rnnc.cli.main(["predict", str(runs["recursive"]), str(future), "--steps", str(HORIZON), "-o", str(out)]):
        return status
    with out.open(newline="") as handle:
        by_cli = np.array([float(r["dco2"]) for r in csv.DictReader(handle)])
    at = int(np.flatnonzero(origins == origin)[0])
    gap = float(np.abs(by_cli - changes["recursive"][at]).max())
    print(f"\nrnnc predict {runs['recursive']} {future} --steps {HORIZON}: the forecast from {EXAMPLE_ORIGIN}, "
          f"largest difference from the rollout above {gap:.1e} ppm")
    if gap > 1e-5:
        print("the command line and the rollout disagree", file=sys.stderr)
        return 1
    plot(args.plot, mae, forecasts, at, origin, level, measured, dates)
    print(f"wrote {args.plot}")
    return 0


def plot(path: Path, mae: dict[str, np.ndarray], forecasts: dict[str, np.ndarray], at: int, origin: int,
         level: np.ndarray, measured: np.ndarray, dates: np.ndarray) -> None:
    """MAE against the step, and the forecasts from one origin against the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, HORIZON + 1)
    for name, values in mae.items():
        left.plot(steps, values, marker="o", label=name)
    left.set(xlabel="weeks ahead", ylabel="MAE (ppm)", title="test 1996-2001: error by step of the horizon")
    left.set_ylim(bottom=0)
    left.legend()
    past = np.arange(origin - 25, origin + 1)
    right.plot(past - origin, level[past], color="black", label="history")
    future = origin + steps
    right.plot(steps[measured[future]], level[future][measured[future]], "o", color="black", label="truth")
    for name, forecast in forecasts.items():
        right.plot(steps, forecast[at], marker=".", label=name)
    right.set(xlabel=f"weeks after {dates[origin]}", ylabel="CO2 (ppm)", title="one forecast")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
