"""`rnnc predict -o OUT.parquet`: the raw outputs as Parquet, written row group by row group.

One row per input row and one column per output: `y` for a chain, each output by name
for a graph (in the model's order). A column holds a fixed-size list of the output's
units per sequence, or for a per-step output a list of such steps, cut at each row's
real steps (no padding on disk, as `rnnc data convert` writes sequences). Each batch
is one row group, so memory stays one batch whatever the input's size; the file goes
through `atomic_open` as every output does. Needs pyarrow (`rnnc[data]`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from rnnc.cli.predict_output import Counted
from rnnc.errors import ArtifactError


class ParquetWriter(Counted):
    def __init__(self, handle: IO[bytes], count: int, model: str):
        super().__init__(count, model)
        from rnnc.data_parquet import pyarrow

        self.pa, self.pq = pyarrow()
        self.handle = handle
        self.writer: Any = None
        self.rows: dict[str, tuple[int, ...]] = {}  # each column's output shape past the batch (and step) axis

    def write(self, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        """A chain's batch: its one output, column `y`."""
        self.write_columns({"y": y}, {"y": lengths})

    def write_columns(self, outputs: Mapping[str, np.ndarray], lengths: Mapping[str, np.ndarray | None]) -> None:
        """One batch of every column: `outputs` by name; `lengths` the real steps of
        each per-step output (None or absent: every step). Float outputs are float32
        lists of their units; integer ids `[N, T]` with lengths (a decoded answer) are
        `list<int64>` cut at them."""
        pa = self.pa
        self._take(len(next(iter(outputs.values()))))
        arrays = {name: _typed(y, lengths.get(name) is not None) for name, y in outputs.items()}
        rows = {name: _row(y) for name, y in arrays.items()}
        if self.writer is None:
            self.rows = rows
            fields = [pa.field(name, self._type(y), nullable=False) for name, y in arrays.items()]
            self.writer = self.pq.ParquetWriter(self.handle, pa.schema(fields))
        for name, row in rows.items():
            if row != self.rows.get(name):
                shape = list(arrays[name].shape[1:])
                raise ArtifactError(f"{self.model}: gave {'outputs' if name == 'y' else name} of shape {shape} after {list(self.rows[name])}")
        columns = [self._column(y, lengths.get(name)) for name, y in arrays.items()]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.writer.schema), row_group_size=len(columns[0]))

    def _type(self, y: np.ndarray) -> Any:
        pa = self.pa
        if y.dtype == np.int64:
            return pa.list_(pa.int64())
        kind = pa.list_(pa.float32(), int(np.prod(_row(y))))
        return pa.list_(kind) if y.ndim == 3 else kind

    def _column(self, y: np.ndarray, lengths: np.ndarray | None) -> Any:
        pa = self.pa
        if y.ndim == 2 and y.dtype == np.float32:
            return pa.FixedSizeListArray.from_arrays(pa.array(y.reshape(-1)), y.shape[1])
        sizes = np.full(len(y), y.shape[1]) if lengths is None else np.minimum(lengths, y.shape[1])
        real = np.arange(y.shape[1])[None, :] < sizes[:, None]
        values = pa.array(y[real].reshape(-1))
        steps = values if y.ndim == 2 else pa.FixedSizeListArray.from_arrays(values, int(np.prod(_row(y))))
        offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
        return pa.ListArray.from_arrays(offsets, steps)

    def finish(self) -> None:
        super().finish()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        """After a failure: let go of the writer quietly (the file is thrown away)."""
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()


def _typed(y: np.ndarray, stepped: bool) -> np.ndarray:
    """Integer ids with lengths as int64 `[N, T]`; anything else as float32."""
    if stepped and y.ndim == 2 and np.asarray(y).dtype.kind in "iu":
        return np.ascontiguousarray(y, dtype=np.int64)
    return np.ascontiguousarray(y, dtype=np.float32)


def _row(y: np.ndarray) -> tuple[int, ...]:
    """The shape of one step (per-step outputs, ids) or one row: past the batch and step axes."""
    return y.shape[2:] if y.ndim == 3 or y.dtype == np.int64 else y.shape[1:]
