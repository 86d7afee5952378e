"""`rnnc evaluate` of a chain over a data set on disk (Parquet, a `.npy` directory), batch by batch.

Parquet is read twice a batch of rows at a time (`rnnc.data_parquet.iter_columns`: once
for each list column's widest row, once to run); a `.npy` directory through its row
source (`rnnc.rows.NpyDirRows`). Each batch is padded to the full width, checked as a
whole file is (`rnnc.dataset.from_arrays`), then run: the model sees exactly what it
sees from the padded `.npz`, so the scores are the same.
Each batch's outputs are folded into running sums (`rnnc.output_sums`) and dropped:
neither the inputs, the outputs nor the labels are ever held whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from rnnc import ir
from rnnc.data_parquet import is_parquet
from rnnc.dataset import Dataset, from_arrays, output_steps
from rnnc.errors import DataError
from rnnc.rows import NpyDirRows, Rows, is_npy_dir
from rnnc.runtime import Predictor


def source_rows(model: ir.Model, data: str) -> Rows:
    from rnnc.parquet_rows import parquet_rows, sequence_lengths

    if is_parquet(data):
        return parquet_rows(model, data)
    plain = NpyDirRows(data)
    pairs = {name: lengths for name, lengths in sequence_lengths(model).items() if lengths in plain.columns}
    plain.close()
    return NpyDirRows(data, pairs)


def predicted_batches(model: ir.Model, predictor: Predictor, data: str, batch_size: int) -> Iterator[tuple[Dataset, np.ndarray]]:
    """(a batch of `data` as a `Dataset`, the model's outputs for it), in order."""
    batches = _parquet_batches(model, data, batch_size) if is_parquet(data) else _row_batches(model, data, batch_size)
    several, empty = False, True
    for start, arrays, total, classes in batches:
        n = len(arrays["x"])
        several = several or n < total
        where = f"{data} (rows {start}-{start + n - 1})" if several else data
        batch = from_arrays(model, arrays["x"], arrays["y"], arrays.get("lengths"), classes=classes, origin=where)
        empty = False
        yield batch, predictor.run(batch.x, batch.lengths)
    if empty:
        raise DataError(f"{data}: holds no samples")


def in_batches(dataset: Dataset, outputs: np.ndarray, batch_size: int) -> Iterator[tuple[Dataset, np.ndarray]]:
    """A data set in memory and its outputs, `batch_size` rows at a time, as a data set
    on disk is read: the sums then add up in the same order."""
    for start in range(0, len(dataset), batch_size):
        rows = slice(start, start + batch_size)
        lengths = None if dataset.lengths is None else dataset.lengths[rows]
        yield dataclasses.replace(dataset, x=dataset.x[rows], y=dataset.y[rows], lengths=lengths), outputs[rows]


Batches = Iterator[tuple[int, dict[str, np.ndarray], int, np.ndarray | None]]  # (first row, arrays, rows in all, classes)


def _missing(data: str, have: list[str]) -> None:
    if missing := [name for name in ("x", "y") if name not in have]:
        raise DataError(f"{data}: no array '{missing[0]}' (arrays: {', '.join(sorted(have)) or 'none'}); it needs x, y and optionally lengths")


def _row_batches(model: ir.Model, data: str, batch_size: int) -> Batches:
    """A `.npy` directory's rows, each batch padded back to the full width."""
    rows = source_rows(model, data)
    _missing(data, list(rows.columns))
    classes = rows.constants.get("classes")
    for start in range(0, len(rows), batch_size):
        index = np.arange(start, min(len(rows), start + batch_size), dtype=np.int64)
        arrays = rows.take(index)
        for name, column in rows.columns.items():  # back to the full width, as the padded file holds it
            have = arrays[name]
            if column.lengths is not None and have.shape[1] < column.shape[1]:
                full = np.zeros((len(have), *column.shape[1:]), have.dtype)
                full[:, : have.shape[1]] = have
                arrays[name] = full
        yield start, arrays, len(rows), classes


def _parquet_batches(model: ir.Model, data: str, batch_size: int) -> Batches:
    """Parquet read twice, `batch_size` rows at a time (`iter_columns`): once for the
    widest row of each list column, once to hand out batches padded to it, as
    a `.npz` of the whole set would be padded."""
    from rnnc.data_parquet import column_names, iter_columns

    have = column_names(data)
    _missing(data, have)
    names = [n for n in ("x", "y", "lengths") if n in have]
    widest: dict[str, int] = {}
    count, ragged, first = 0, False, None
    for columns, _ in iter_columns(data, names, 1024):
        for name, column in columns.items():
            if column.offsets is not None:
                sizes = column.sizes()
                widest[name] = max(widest.get(name, 0), int(sizes.max(initial=0)))
                if name == "x" and sizes.size:
                    first = int(sizes[0]) if first is None else first
                    ragged = ragged or bool((sizes != first).any())
        count += len(columns["x"])
    if "x" not in widest:
        raise DataError(f"{data}: column 'x' holds one value per row; a sequence is a list of steps per row")
    if "y" in widest and model.sequence_output:
        widest["y"] = max(widest["y"], int(output_steps(model, widest["x"])))
    start = 0
    for columns, classes in iter_columns(data, names, batch_size):
        index = np.arange(len(columns["x"]))
        try:
            arrays = {name: column.take(index, widest.get(name)) for name, column in columns.items()}
        except DataError as err:
            raise DataError(f"{data}: {err}") from None
        if "lengths" not in arrays and ragged:  # as training reads it: a fixed-length spec refuses them
            arrays["lengths"] = columns["x"].sizes()
        yield start, arrays, count, None if classes is None else np.asarray(classes, dtype=str)
        start += len(index)


def on_disk(data: str) -> bool:
    """Parquet, or a directory of `.npy` files (a chain's `x.npy`, `y.npy`; a graph's
    arrays by name); another directory is refused as before."""
    return is_parquet(data) or is_npy_dir(data)
