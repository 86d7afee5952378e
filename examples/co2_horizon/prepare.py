"""Write an input for `rnnc predict --steps`: a CO2 history, then the weeks to forecast.

This example trains on the co2_forecast example's files (examples/co2_forecast/data/,
the Mauna Loa weekly record statsmodels ships, prepared by that example's prepare.py);
it ships no data of its own. A recursive forecast by `rnnc predict MODEL FILE --steps
N` reads FILE as the history and then N future rows whose target cells are empty,
their other features given: the time of year is known ahead, the weekly change
(`dco2`, the target) is not. This script writes such a file from co2_forecast's test
file: the weeks up to ORIGIN (at least the model's 52-week window), then the next
STEPS weeks with `dco2` left empty and their `season_sin`, `season_cos` kept.

    python examples/co2_horizon/prepare.py --origin 2001-09-29 -o future.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "co2_forecast" / "data"
COLUMNS = ("date", "dco2", "season_sin", "season_cos")
WINDOW, STEPS = 52, 13


def read_rows(split: str = "test") -> list[dict[str, str]]:
    """co2_forecast's `split` file, one dict per week."""
    with (SOURCE / f"{split}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_future(rows: list[dict[str, str]], origin: int, steps: int, path: Path) -> None:
    """Rows `origin - WINDOW + 1 .. origin` in full, then `steps` rows without `dco2`."""
    if origin - WINDOW + 1 < 0 or origin + steps >= len(rows):
        raise ValueError(f"origin row {origin} leaves no {WINDOW}-week history or no {steps} weeks ahead in {len(rows)} rows")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in range(origin - WINDOW + 1, origin + steps + 1):
            row = rows[r]
            writer.writerow([row["date"], row["dco2"] if r <= origin else "", row["season_sin"], row["season_cos"]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--origin", default="2001-09-29", help="the last week of history (a date in 1995-2001; default 2001-09-29)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"weeks to forecast (default {STEPS})")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .csv to write")
    args = parser.parse_args()
    rows = read_rows()
    dates = [row["date"] for row in rows]
    if args.origin not in dates:
        print(f"--origin {args.origin}: no such week in {SOURCE / 'test.csv'} ({dates[0]} .. {dates[-1]}, Saturdays)", file=sys.stderr)
        return 2
    try:
        write_future(rows, dates.index(args.origin), args.steps, args.output)
    except ValueError as err:
        print(f"--origin {args.origin}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
