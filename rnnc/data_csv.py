"""A `.csv` time series as windowed samples, as the spec's `data.csv` says.

The file is one row per timestep under a header of column names; columns that neither
`features` nor `targets` name may hold anything (a date, a note). Sample `i` feeds the
`features` columns of rows `i .. i + window - 1` and predicts the `targets` columns of
row `i + window - 1 + horizon`, so a file of R rows gives `R - window - horizon + 1`
samples in time order (a `validation_split` then holds out the latest ones); for
prediction (`read_series`) the targets lie ahead, so every full window is a sample,
`R - window + 1` of them, and the target columns may be absent. Read with
the `csv` module and numpy: no pandas. Problems are one-line `DataError`s naming the
file and, where there is one, the line.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
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


def parse_table(path: Path, rows: list[list[str]], used: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """`read_table` on rows already read (`rnnc check` passes the header and a first row)."""
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


def read_windows(path: Path, windows: ir.CsvWindows) -> tuple[np.ndarray, np.ndarray]:
    """(x `[N, window, features]`, y `[N, targets]`) from the series in `path`."""
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
