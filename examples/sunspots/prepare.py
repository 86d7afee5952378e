"""Build the sunspots example's data from the yearly record statsmodels ships.

`statsmodels.datasets.sunspots` holds the yearly mean sunspot number (Wolfer/SIDC)
for 1700 to 2008, 309 years. The task: from the last 10 years, will next year's
sunspot number be higher than this year's (is the 11-year cycle rising)? Columns:

- `year`, `sunspots` (the number as recorded);
- `scaled`: sunspots / 100, the model's input (values of order one);
- `rises`: 1 when the year's number is higher than the year before's, else 0: the label.

Split by the year a window forecasts: up to 1900 train, 1901-1950 validate,
1951-2008 test. Each later file starts 10 years early so that its first window
forecasts its period's first year. statsmodels is needed here only; the example ships
the csv files this writes.

    pip install statsmodels && python examples/sunspots/prepare.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

WINDOW = 10
SPLITS = {"train": (1700, 1900), "val": (1901, 1950), "test": (1951, 2008)}  # years forecast, inclusive
HERE = Path(__file__).resolve().parent


def main() -> int:
    try:
        from statsmodels.datasets import sunspots
    except ImportError:
        print("prepare.py needs statsmodels (pip install statsmodels); the example itself does not", file=sys.stderr)
        return 2
    frame = sunspots.load_pandas().data
    years = frame["YEAR"].to_numpy().astype(int)
    values = frame["SUNACTIVITY"].to_numpy()
    (HERE / "data").mkdir(exist_ok=True)
    for split, (first, last) in SPLITS.items():
        lo = max(0, int(np.flatnonzero(years == first)[0]) - (WINDOW if split != "train" else 0))
        hi = int(np.flatnonzero(years == last)[0]) + 1
        with (HERE / "data" / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["year", "sunspots", "scaled", "rises"])
            for r in range(lo, hi):
                rises = int(r > 0 and values[r] > values[r - 1])
                writer.writerow([years[r], f"{values[r]:g}", f"{values[r] / 100:.4f}", rises])
        print(f"wrote data/{split}.csv: years {years[lo]}..{years[hi - 1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
