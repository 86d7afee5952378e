"""A `.csv` time series as windowed samples, as the spec's `data.csv` says.

The file is one row per timestep under a header of column names; columns that neither
`features` nor `targets` name may hold anything (a date, a note). Sample `i` feeds the
`features` columns of rows `i .. i + window - 1` and predicts the `targets` columns of
row `i + window - 1 + horizon`, so a file of R rows gives `R - window - horizon + 1`
samples in time order (a `validation_split` then holds out the latest ones). With
`all_steps` (direct multi-step forecasting) the sample predicts every row from
`i + window` to `i + window - 1 + horizon`, step-major: `y[k * len(targets) + j]` is
target `j` at step `k + 1`, named `<target>+<k + 1>` (`target_names`); the count of
samples is the same, so no row is dropped or shifted by asking for every step. For
prediction (`read_series`) the targets lie ahead, so every full window is a sample,
`R - window + 1` of them, and the target columns may be absent; to roll a one-step
model forward (`read_future`, for `rnnc predict --steps N`) the last N rows leave
their target cells empty, to be filled by the forecasts. Read with
the `csv` module and numpy: no pandas. Problems are one-line `DataError`s naming the
file and, where there is one, the line.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ir
from .errors import DataError


def read_table(path: Path, used: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(column names, float64 values [rows, columns]) of a csv with a header; only the
    `used` columns (default: all) must hold numbers, the others (a date, a note) read as 0."""
    return parse_table(path, _read_rows(path), used)


def _read_rows(path: Path) -> list[list[str]]:
    """The non-blank rows of a csv file, cells as written."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM (Excel writes one) is not in the first column's name
            rows = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text csv file (cannot decode it as UTF-8)") from None
    except (OSError, csv.Error) as err:
        raise DataError(f"{path}: cannot read csv ({err})") from None
    return [row for row in rows if row and any(cell.strip() for cell in row)]


def parse_table(path: Path, rows: list[list[str]], used: Sequence[str] | None = None,
                empty: Sequence[str] = ()) -> tuple[list[str], np.ndarray]:
    """`read_table` on rows already read (`rnnc check` passes the header and a first row);
    an empty cell of an `empty` column reads as NaN (a value still to forecast)."""
    rows = [row for row in rows if row and any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path}: is empty (expected a header of column names, then one row per timestep)")
    header = [name.strip() for name in rows[0]]
    parsed = [c for c, name in enumerate(header) if used is None or name in used]
    values = np.zeros((len(rows) - 1, len(header)), np.float64)
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
        for c in parsed:
            cell = row[c]
            if not cell.strip() and header[c] in empty:
                values[r, c] = np.nan
                continue
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise DataError(f"{path}:{line}: column '{header[c]}': {cell.strip()!r} is not a number") from None
    return header, values


def _columns(path: Path, header: list[str], names: tuple[str, ...], role: str) -> list[int]:
    index = []
    for name in names:
        if name not in header:
            raise DataError(f"{path}: data.csv.{role} names column '{name}', but the file has: {', '.join(header)}")
        index.append(header.index(name))
    return index


def target_names(windows: ir.CsvWindows) -> tuple[str, ...]:
    """What each output unit predicts: the targets, or with `all_steps` each target at
    each step of the horizon, step-major (`co2+1`, `co2+2`, ...)."""
    if not windows.all_steps:
        return windows.targets
    return tuple(f"{name}+{k}" for k in range(1, windows.horizon + 1) for name in windows.targets)


def read_windows(path: Path, windows: ir.CsvWindows) -> tuple[np.ndarray, np.ndarray]:
    """(x `[N, window, features]`, y `[N, targets]`, or `[N, horizon * targets]` with
    `all_steps`) from the series in `path`."""
    header, values = read_table(path, None if windows.features is None else (*windows.features, *windows.targets))
    features = _columns(path, header, windows.features or tuple(header), "features")
    targets = _columns(path, header, windows.targets, "targets")
    _check_finite(path, header, values)
    count = len(values) - windows.window - windows.horizon + 1
    if count < 1:
        raise DataError(
            f"{path}: {len(values)} rows are too few for window {windows.window} + horizon "
            f"{windows.horizon} (at least {windows.window + windows.horizon} needed)"
        )
    x = _windows(values[:, features], windows.window, count)
    if windows.all_steps:  # rows window .. window + count + horizon - 2 hold every step's targets
        ahead = values[windows.window : windows.window + count + windows.horizon - 1][:, targets]
        steps = np.lib.stride_tricks.sliding_window_view(ahead, windows.horizon, axis=0)  # [count, targets, horizon]
        return x, np.ascontiguousarray(steps.transpose(0, 2, 1).reshape(count, -1), dtype=np.float32)
    first_target = windows.window - 1 + windows.horizon
    y = values[first_target : first_target + count][:, targets].astype(np.float32)
    return x, y


def read_series(path: Path, windows: ir.CsvWindows) -> tuple[np.ndarray, tuple[str, ...], list[tuple[str, ...]]]:
    """For prediction, where the targets lie ahead: (x `[N, window, features]` of every
    full window, `N = R - window + 1`, the last one ending at the file's last row; the
    names of the columns neither fed nor predicted (a date); their cells at each
    window's last row, to say which row a prediction follows). Target columns may be absent."""
    rows = _read_rows(path)
    header, values = parse_table(path, rows, windows.features)
    features = _columns(path, header, windows.features or tuple(header), "features")
    _check_finite(path, [header[c] for c in features], values[:, features])
    count = len(values) - windows.window + 1
    if count < 1:
        raise DataError(f"{path}: {len(values)} rows are too few for one window of {windows.window} (data.csv.window)")
    x = _windows(values[:, features], windows.window, count)
    others = [c for c, name in enumerate(header) if c not in features and name not in windows.targets]
    last = rows[windows.window : windows.window + count]  # rows[0] is the header
    return x, tuple(header[c] for c in others), [tuple(row[c].strip() for c in others) for row in last]


@dataclass(frozen=True)
class Future:
    """A series to roll a one-step forecaster over (`read_future`): the `history` rows'
    features `[H, features]`, the `ahead` rows' `[steps, features]` (their target cells 0,
    to be filled by the forecasts), where the targets sit among the features, and the
    columns neither fed nor predicted (a date) with their cells at each row ahead."""

    history: np.ndarray
    ahead: np.ndarray
    targets: tuple[int, ...]
    key_names: tuple[str, ...]
    keys: list[tuple[str, ...]]


def read_future(path: Path, windows: ir.CsvWindows, steps: int) -> Future:
    """The history and the `steps` rows ahead of a series whose last `steps` rows have
    empty target cells (every target, in those rows only) and the other features given
    (known covariates, such as the calendar). The targets must be among the features."""
    rows = _read_rows(path)
    used = None if windows.features is None else (*windows.features, *windows.targets)
    header, values = parse_table(path, rows, used, empty=windows.targets)
    features = _columns(path, header, windows.features or tuple(header), "features")
    targets = _columns(path, header, windows.targets, "targets")
    assert set(targets) <= set(features), "predict_rollout refuses a model whose targets are not features"
    blank = np.isnan(values[:, targets])
    history = len(values) - steps
    ending = len(values) - next((r + 1 for r in range(len(values) - 1, -1, -1) if not blank[r].all()), 0)
    if ending < steps or history < 0:
        raise DataError(f"{path}: --steps {steps} forecasts the file's last {_counted(steps, 'row')}, whose "
                        f"target cells ({', '.join(windows.targets)}) must be empty; the last {ending} are")
    if blank.any():
        row, col = (int(i) for i in np.argwhere(blank)[0])
        if row < history:
            raise DataError(f"{path}:{row + 2}: column '{windows.targets[col]}' is empty; only the last "
                            f"{_counted(steps, 'row')} (the steps to forecast) may leave their targets empty")
    series = values[:, features]
    series[history:, [features.index(t) for t in targets]] = 0.0  # filled by the forecasts
    _check_finite(path, [header[c] for c in features], series)
    if history < windows.window:
        raise DataError(f"{path}: {_counted(history, 'row')} of history before the {steps} to forecast, too few "
                        f"for one window of {windows.window} (data.csv.window)")
    series = series.astype(np.float32)
    others = [c for c, name in enumerate(header) if c not in features and name not in windows.targets]
    return Future(series[:history], series[history:], tuple(features.index(t) for t in targets),
                  tuple(header[c] for c in others), [tuple(row[c].strip() for c in others) for row in rows[1 + history :]])


def _counted(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _windows(columns: np.ndarray, window: int, count: int) -> np.ndarray:
    """float32 `[count, window, features]`: the first `count` windows of `window` rows."""
    view = np.lib.stride_tricks.sliding_window_view(columns, window, axis=0)
    return np.ascontiguousarray(view[:count].transpose(0, 2, 1), dtype=np.float32)


def _check_finite(path: Path, header: list[str], values: np.ndarray) -> None:
    """No NaN or inf in `values` (columns not read are 0, never bad)."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{path}:{row + 2}: column '{header[col]}' is {values[row, col]} (NaN and inf are not data)")
