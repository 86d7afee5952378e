"""Build the co2_static example's data from the co2_forecast example's weekly record.

Reads examples/co2_forecast/data/{train,val,test}.csv (the Mauna Loa weekly CO2 that
statsmodels ships, prepared by that example's prepare.py) and cuts each file into the
same windows as the v1 spec does (sample i: rows i .. i + 51 in, the change at row
i + 51 + 13 out), so both examples score the same test weeks. It writes, per split,
data/<split>.npz with one array per input and output of spec.yaml:

- `history` float32 [N, 52, 1]: the window's weekly changes (`dco2`);
- `calendar` float32 [N, 5]: static features of the sample, known when the forecast
  is made: the time of year of the window's last week and of the target week, each as
  a point on a circle (sin, cos), and a trend, (year of the last week - 1990) / 10;
- `change` float32 [N, 1]: the target, co2 13 weeks after the window's last week minus
  co2 in that week (ppm).

numpy only; the files are compressed (np.savez_compressed), about 30 KB in all.

    python examples/co2_static/prepare.py
"""

from __future__ import annotations

import csv
import sys
from datetime import date
from pathlib import Path

import numpy as np

WINDOW, HORIZON = 52, 13  # as examples/co2_forecast/spec.yaml
HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "co2_forecast" / "data"


def season(day: date) -> tuple[float, float]:
    """The time of year as a point on the unit circle, as co2_forecast's columns."""
    angle = 2 * np.pi * day.timetuple().tm_yday / 365.25
    return float(np.sin(angle)), float(np.cos(angle))


def windows(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    dates = [date.fromisoformat(r["date"]) for r in rows]
    dco2 = np.array([float(r["dco2"]) for r in rows], np.float32)
    change = np.array([float(r["change"]) for r in rows], np.float32)
    count = len(rows) - WINDOW - HORIZON + 1
    last = np.arange(count) + WINDOW - 1  # the window's last row
    target = last + HORIZON
    history = np.lib.stride_tricks.sliding_window_view(dco2, WINDOW)[:count, :, None]
    calendar = np.array([
        [*season(dates[t]), *season(dates[t + HORIZON]), (dates[t].year + dates[t].timetuple().tm_yday / 365.25 - 1990) / 10]
        for t in last
    ], np.float32)
    return {"history": np.ascontiguousarray(history), "calendar": calendar, "change": change[target][:, None]}


def main() -> int:
    missing = [s for s in ("train", "val", "test") if not (SOURCE / f"{s}.csv").is_file()]
    if missing:
        print(f"missing {', '.join(f'{SOURCE}/{s}.csv' for s in missing)}: run examples/co2_forecast/prepare.py first", file=sys.stderr)
        return 2
    (HERE / "data").mkdir(exist_ok=True)
    for split in ("train", "val", "test"):
        arrays = windows(SOURCE / f"{split}.csv")
        np.savez_compressed(HERE / "data" / f"{split}.npz", **arrays)
        size = (HERE / "data" / f"{split}.npz").stat().st_size
        print(f"wrote data/{split}.npz: {len(arrays['change'])} samples, {size / 1000:.0f} KB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
