"""Build the co2_forecast example's data from the Mauna Loa record statsmodels ships.

`statsmodels.datasets.co2` holds weekly atmospheric CO2 at Mauna Loa (ppm), March
1958 to December 2001, 2,284 weeks, 59 of them missing. This script fills the missing
weeks by linear interpolation (marking them `measured = 0`, so the example never
scores a forecast against a filled-in value) and writes the columns the spec reads:

- `dco2`: the change from the previous week (ppm), the model's main input;
- `season_sin`, `season_cos`: the time of year, as a point on a circle;
- `change`: the change from `HORIZON` weeks earlier (ppm), the value to forecast: a
  window ending at week t predicts `change` at week t + HORIZON, co2[t + HORIZON] - co2[t].

Split by time: targets up to 1991 train, 1992-1995 validate, 1996-2001 test. Each
later file starts `WINDOW + HORIZON - 1` weeks early so that its first window's target
is its period's first week (those early weeks are inputs only, never targets).
statsmodels is needed here only; the example ships the csv files this writes.

    pip install statsmodels && python examples/co2_forecast/prepare.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

WINDOW, HORIZON = 52, 13  # a year of weeks in, a quarter of a year ahead
SPLITS = {"train": (None, "1992-01-01"), "val": ("1992-01-01", "1996-01-01"), "test": ("1996-01-01", None)}
HERE = Path(__file__).resolve().parent


def main() -> int:
    try:
        from statsmodels.datasets import co2
    except ImportError:
        print("prepare.py needs statsmodels (pip install statsmodels); the example itself does not", file=sys.stderr)
        return 2
    frame = co2.load_pandas().data
    measured = frame["co2"].notna().to_numpy()
    level = frame["co2"].interpolate().to_numpy()
    dates = frame.index
    day = dates.day_of_year.to_numpy() / 365.25
    dco2 = np.concatenate([[0.0], np.diff(level)])
    change = np.full(len(level), np.nan)
    change[HORIZON:] = level[HORIZON:] - level[:-HORIZON]
    first = max(1, HORIZON)  # rows before have no previous week or no change to forecast
    (HERE / "data").mkdir(exist_ok=True)
    for split, (start, stop) in SPLITS.items():
        targets = np.ones(len(level), bool)
        if start is not None:
            targets &= dates >= start
        if stop is not None:
            targets &= dates < stop
        rows = np.flatnonzero(targets)
        lo = max(first, rows[0] - (WINDOW + HORIZON - 1)) if start is not None else first
        hi = rows[-1] + 1
        with (HERE / "data" / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["date", "co2", "measured", "dco2", "season_sin", "season_cos", "change"])
            for r in range(lo, hi):
                writer.writerow([
                    dates[r].date().isoformat(), f"{level[r]:.2f}", int(measured[r]), f"{dco2[r]:.3f}",
                    f"{np.sin(2 * np.pi * day[r]):.4f}", f"{np.cos(2 * np.pi * day[r]):.4f}", f"{change[r]:.3f}",
                ])
        print(f"wrote data/{split}.csv: rows {dates[lo].date()} .. {dates[hi - 1].date()} ({hi - lo})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
