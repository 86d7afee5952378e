"""`rnnc evaluate` of a chain over a data set on disk (Parquet, a `.npy` directory), batch by batch.

The rows come from a row source (`rnnc.rows`: `rnnc.parquet_rows.parquet_rows`, or
`NpyDirRows`), `--batch-size` at a time, each batch padded back to the source's full
time axis and checked as a whole file is (`rnnc.dataset.from_arrays`), then run: the
model sees exactly what it sees from the padded `.npz`, so the scores are the same.
Only the outputs and the labels (what the metrics need whole) are kept; the inputs are
never held whole (a `Dataset` is returned with a zero-stride `x` of the right shape).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnc import ir
from rnnc.data_parquet import is_parquet
from rnnc.dataset import Dataset, from_arrays
from rnnc.errors import DataError
from rnnc.rows import NpyDirRows, Rows
from rnnc.runtime import Predictor


def source_rows(model: ir.Model, data: str) -> Rows:
    from rnnc.parquet_rows import parquet_rows, sequence_lengths

    if is_parquet(data):
        return parquet_rows(model, data)
    plain = NpyDirRows(data)
    pairs = {name: lengths for name, lengths in sequence_lengths(model).items() if lengths in plain.columns}
    plain.close()
    return NpyDirRows(data, pairs)


def predict_rows(model: ir.Model, predictor: Predictor, data: str, batch_size: int) -> tuple[Dataset, np.ndarray]:
    """(the data set, its `x` a zero-stride stand-in; the model's outputs) of `data`."""
    rows = source_rows(model, data)
    if missing := [name for name in ("x", "y") if name not in rows.columns]:
        have = ", ".join(sorted(rows.columns)) or "none"
        raise DataError(f"{data}: no array '{missing[0]}' (arrays: {have}); it needs x, y and optionally lengths")
    if len(rows) == 0:
        raise DataError(f"{data}: holds no samples")
    targets, lengths, outputs = [], [], []
    classes = rows.constants.get("classes")
    first = None
    for start in range(0, len(rows), batch_size):
        index = np.arange(start, min(len(rows), start + batch_size), dtype=np.int64)
        arrays = rows.take(index)
        for name, column in rows.columns.items():  # back to the full width, as the padded file holds it
            have = arrays[name]
            if column.lengths is not None and have.shape[1] < column.shape[1]:
                full = np.zeros((len(have), *column.shape[1:]), have.dtype)
                full[:, : have.shape[1]] = have
                arrays[name] = full
        where = f"{data} (rows {start}-{index[-1]})" if len(rows) > batch_size else data
        batch = from_arrays(model, arrays["x"], arrays["y"], arrays.get("lengths"), classes=classes, origin=where)
        outputs.append(predictor.run(batch.x, batch.lengths))
        targets.append(batch.y)
        if batch.lengths is not None:
            lengths.append(batch.lengths)
        first = first or batch
    assert first is not None
    shape = (len(rows), *first.x.shape[1:])
    x = np.broadcast_to(np.zeros((), first.x.dtype), shape)
    dataset = Dataset(x, np.concatenate(targets), np.concatenate(lengths) if lengths else None, data, first.classes)
    return dataset, np.concatenate(outputs)


def on_disk(data: str) -> bool:
    """Parquet, or a directory holding `x.npy` (another directory is refused as before)."""
    return is_parquet(data) or (Path(data).is_dir() and (Path(data) / "x.npy").is_file())
