"""Forecast Mauna Loa CO2 13 weeks ahead; compare with the seasonal-naive forecast.

One command: `python examples/co2_forecast/run.py` trains `spec.yaml` with `rnnc
train` (an LSTM over 52-week windows, data/train.csv, data/val.csv for early stopping),
runs the exported model.onnx on every window of data/test.csv (1996-2001) with
onnxruntime, turns each predicted change into a CO2 level (the window's last level
plus the change) and prints the mean absolute error in ppm against:

- seasonal naive: the level 52 weeks before the target week;
- persistence: the window's last level (no change in 13 weeks).

Only weeks with a real measurement count (the 59 weeks the record misses were filled
in for the inputs, never scored). Extra arguments go to `rnnc train`.
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
SEASON = 52  # weeks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/co2-forecast"), help="where rnnc train writes (default: runs/co2-forecast)")
    args, extra = parser.parse_known_args()
    status = rnnc.cli.main(["train", str(HERE / "spec.yaml"), "-o", str(args.run_dir), "--no-progress", *extra])
    if status:
        return status

    from rnnc.data import load_file
    from rnnc.runtime import Predictor
    from rnnc.spec import load_model

    model = load_model(HERE / "spec.yaml")
    windows = model.data.csv
    assert windows is not None and model.data.test is not None
    test = load_file(model, model.data.test)  # the spec's own windowing of the test file
    change = Predictor(args.run_dir / "model.onnx").predict(test.x)[:, 0]

    with open(model.data.test, newline="") as handle:
        rows = list(csv.DictReader(handle))
    level = np.array([float(r["co2"]) for r in rows])
    measured = np.array([r["measured"] == "1" for r in rows])
    target = np.arange(len(test)) + windows.window - 1 + windows.horizon  # the row each window forecasts
    last = target - windows.horizon  # the window's last row
    scored = measured[target]
    truth = level[target][scored]
    forecasts = {
        "LSTM (rnnc, model.onnx on onnxruntime)": (level[last] + change)[scored],
        f"seasonal naive (the level {SEASON} weeks earlier)": level[target - SEASON][scored],
        f"persistence (the last level, {windows.horizon} weeks earlier)": level[last][scored],
    }
    first, final = rows[target[0]]["date"], rows[target[-1]]["date"]
    print(f"\ntest: {int(scored.sum())} measured weeks from {first} to {final}, forecast {windows.horizon} weeks ahead")
    errors = {}
    for name, forecast in forecasts.items():
        errors[name] = float(np.abs(forecast - truth).mean())
        print(f"  MAE {errors[name]:.3f} ppm  {name}")
    lstm, naive = list(errors.values())[:2]
    print(f"\nLSTM MAE {lstm:.3f} ppm vs seasonal naive {naive:.3f} ppm: {100 * (1 - lstm / naive):.0f}% lower")
    return 0


if __name__ == "__main__":
    sys.exit(main())
